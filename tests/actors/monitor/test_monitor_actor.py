"""The monitor actor end to end on real SQLite files, with test ports and wall time set by the test."""

from __future__ import annotations

import pytest

from actors.monitor.messages import (
    AlertState,
    ExpireSilence,
    GetStatus,
    InvalidQuery,
    ListAlerts,
    ListSeries,
    ListSilences,
    MetricHistory,
    RecoveryHistory,
    SampleNow,
    SettingChanged,
    Silence,
)
from actors.monitor.settings import (
    ActionKind,
    AlertRule,
    MonitorSettings,
    Op,
    RecoveryPolicy,
    Threshold,
)
from actors.notifier.messages import Severity

from .conftest import EPOCH, Rig, RigFactory

CPU = AlertRule("HighCpu", "cpu", Threshold(Op.GT, 90), for_s=300, summary="CPU {value:.0f}%")


def _settings(*rules: AlertRule, policies: tuple[RecoveryPolicy, ...] = (), **kw: object) -> MonitorSettings:
    return MonitorSettings(interval_s=100_000, rules=rules, policies=policies, **kw)  # type: ignore[arg-type]


async def _types(rig: Rig, *topics: str) -> list[str]:
    return [e.type for e in await rig.events(*topics)]


async def test_flap_shorter_than_for_raises_no_event(rig: RigFactory) -> None:
    async with rig(_settings(CPU)) as r:
        for t in range(0, 3000, 10):
            await r.round_at(t, cpu=95.0 if (t // 200) % 2 == 0 else 10.0)
        assert await _types(r, "alert") == []
        listed = await r.ref.ask(lambda x: ListAlerts(x))
        assert [a.state for a in listed] == [AlertState.PENDING]  # the last breach is still waiting


async def test_sustained_breach_fires_once_and_resolves_once(rig: RigFactory) -> None:
    async with rig(_settings(CPU)) as r:
        for t in range(0, 1000, 10):
            await r.round_at(t, cpu=95.0)
        status = await r.ref.ask(lambda x: GetStatus(x))
        for t in range(1000, 1100, 10):
            await r.round_at(t, cpu=20.0)
        events = await r.events("alert")
        alerts = await r.ref.ask(lambda x: ListAlerts(x))
        assert [e.seq for e in r.published] == [e.seq for e in await r.events()]  # on the live feed too
    assert [e.type for e in events] == ["alert.firing", "alert.resolved"]
    firing, resolved = events
    assert firing.subject == resolved.subject == alerts[0].fingerprint
    assert firing.data["fired_at"] == EPOCH + 300 and firing.data["summary"] == "CPU 95%"
    assert resolved.data["resolved_at"] == EPOCH + 1000
    assert [(a.state, a.fired_at) for a in alerts] == [(AlertState.RESOLVED, EPOCH + 300)]
    assert (status.alerts_firing, status.ticks) == (1, 100)


async def test_restarted_monitor_adopts_firing_alert_without_refiring(rig: RigFactory) -> None:
    settings = _settings(CPU)
    async with rig(settings) as r:
        for t in range(0, 400, 10):
            await r.round_at(t, cpu=95.0)
    async with rig(settings) as r:  # same files, new incarnation
        await r.round_at(400, cpu=95.0)
        await r.round_at(410, cpu=5.0)
        assert await _types(r, "alert") == ["alert.firing", "alert.resolved"]


async def test_metric_history_and_series_are_queryable(rig: RigFactory) -> None:
    async with rig(_settings()) as r:
        for t in range(5):
            await r.round_at(t * 10, queue_depth__priority_5=float(t), requests_total=100.0 * t)
        series = await r.ref.ask(lambda x: ListSeries(x))
        history = await r.ref.ask(lambda x: MetricHistory('queue_depth{priority="5"}', EPOCH, EPOCH + 100, x))
        rates = await r.ref.ask(lambda x: MetricHistory("requests_per_s", EPOCH, EPOCH + 100, x))
        with pytest.raises(InvalidQuery):
            await r.ref.ask(lambda x: MetricHistory("x", EPOCH + 1, EPOCH, x))
    assert series == ('queue_depth{priority="5"}', "requests_per_s", "requests_total")
    assert [v for _, v in history.points] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [v for _, v in rates.points] == [10.0] * 4  # derived from the counter


async def test_silence_mutes_notifications_but_not_events(rig: RigFactory) -> None:
    rule = AlertRule("Down", "up", Threshold(Op.LT, 1), labels={"team": "core"})
    async with rig(_settings(rule)) as r:
        silence = await r.ref.ask(lambda x: Silence({"team": "core"}, 600, "ops", x, comment="deploy"))
        with pytest.raises(InvalidQuery):
            await r.ref.ask(lambda x: Silence({}, 600, "ops", x))
        await r.round_at(10, up=0.0)
        (event,) = await r.events("alert")
        assert event.data["silenced"] is True
        assert await r.ref.ask(lambda x: ListSilences(x)) == (silence,)
        assert await r.ref.ask(lambda x: ExpireSilence(silence.id, x))
        assert await r.ref.ask(lambda x: ListSilences(x)) == ()


async def test_crashing_actor_is_restarted_with_backoff_then_escalated(rig: RigFactory) -> None:
    rule = AlertRule("ActorDown", "actor_down", Threshold(Op.GT, 0.5), actions=("restart",))
    policy = RecoveryPolicy("restart", ActionKind.RESTART_ACTOR, escalate_after=4)
    async with rig(_settings(rule, policies=(policy,))) as r:
        for t in range(0, 1000, 5):
            await r.round_at(t, actor_down__actor_locks=1.0, actor_down__actor_dispatcher=0.0)
        history = await r.ref.ask(lambda x: RecoveryHistory(x, target="locks"))
        events = await r.events("recovery")
    assert r.recovery.calls == [("restart_actor", "locks")] * 4
    assert [(h.ts - EPOCH, h.action, h.outcome, h.attempt) for h in reversed(history)] == [
        (0, "restart_actor", "ok", 1),
        (10, "restart_actor", "ok", 2),
        (30, "restart_actor", "ok", 3),
        (70, "restart_actor", "ok", 4),
        (150, "escalate", "escalated", 4),
    ]
    assert [e.data["outcome"] for e in events] == ["ok"] * 4 + ["escalated"]
    assert events[0].subject == "locks" and events[0].data["rule"] == "ActorDown"


async def test_restart_count_resets_after_ten_minutes_healthy(rig: RigFactory) -> None:
    rule = AlertRule("ActorDown", "actor_down", Threshold(Op.GT, 0.5), actions=("restart",))
    policy = RecoveryPolicy("restart", ActionKind.RESTART_ACTOR, escalate_after=2)
    async with rig(_settings(rule, policies=(policy,))) as r:
        await r.round_at(0, actor_down__actor_a=1.0)
        await r.round_at(10, actor_down__actor_a=1.0)
        await r.round_at(20, actor_down__actor_a=0.0)  # healthy from t=20
        await r.round_at(620, actor_down__actor_a=1.0)  # 10 min later: a fresh start
        await r.round_at(630, actor_down__actor_a=1.0)
        history = await r.ref.ask(lambda x: RecoveryHistory(x))
    assert [(h.ts - EPOCH, h.attempt, h.outcome) for h in reversed(history)] == [
        (0, 1, "ok"), (10, 2, "ok"), (620, 1, "ok"), (630, 2, "ok"),
    ]  # fmt: skip


async def test_core_without_heartbeat_is_requeued_isolated_and_restored_when_healthy(rig: RigFactory) -> None:
    rule = AlertRule(
        "CoreHeartbeatLost",
        "core_heartbeat_age_seconds",
        Threshold(Op.GT, 30),
        actions=("requeue", "isolate"),
    )
    policies = (
        RecoveryPolicy("requeue", ActionKind.REQUEUE_CORE, cooldown_s=60),
        RecoveryPolicy("isolate", ActionKind.ISOLATE_CORE, fallback_core="spare", restore_after_s=60),
    )
    async with rig(_settings(rule, policies=policies)) as r:
        for t in range(0, 50, 10):
            await r.round_at(t, core_heartbeat_age_seconds__core_gpu=45.0 + t)
        status = await r.ref.ask(lambda x: GetStatus(x))
        for t in range(50, 200, 10):
            await r.round_at(t, core_heartbeat_age_seconds__core_gpu=2.0)
        final = await r.ref.ask(lambda x: GetStatus(x))
        events = await r.events("recovery")
    assert status.isolated_cores == ("gpu",) and final.isolated_cores == ()
    assert r.recovery.calls == [
        ("requeue_core", "gpu"), ("isolate_core", "gpu", "spare"), ("restore_core", "gpu"),
    ]  # fmt: skip
    assert [(e.ts, e.data["action"], e.core_id) for e in events][-1][1:] == ("restore_core", "gpu")
    restore = events[-1]
    assert restore.data["outcome"] == "ok"
    assert events[0].data["detail"] == "re-queued 3 task(s)"


async def test_isolated_core_that_fails_again_is_not_restored(rig: RigFactory) -> None:
    rule = AlertRule("Hb", "hb", Threshold(Op.GT, 30), actions=("isolate",))
    policy = RecoveryPolicy("isolate", ActionKind.ISOLATE_CORE, restore_after_s=60)
    async with rig(_settings(rule, policies=(policy,))) as r:
        await r.round_at(0, hb__core_c=99.0)
        await r.round_at(10, hb__core_c=1.0)  # healthy: probe starts
        await r.round_at(40, hb__core_c=99.0)  # fails again before 60 s
        await r.round_at(100, hb__core_c=1.0)
        await r.round_at(150, hb__core_c=1.0)
        assert r.recovery.calls == [("isolate_core", "c", "None")]
        await r.round_at(160, hb__core_c=1.0)
        assert r.recovery.calls[-1] == ("restore_core", "c")


async def test_setting_change_followed_by_errors_is_rolled_back_once(rig: RigFactory) -> None:
    rule = AlertRule("HighErrorRate", "err", Threshold(Op.GT, 0.05), for_s=60, actions=("rollback",))
    policy = RecoveryPolicy("rollback", ActionKind.ROLLBACK, rollback_window_s=300)
    async with rig(_settings(rule, policies=(policy,))) as r:
        await r.ref.tell(SettingChanged("ancient", at=EPOCH - 1000))  # too long before the alert
        await r.ref.tell(SettingChanged("rate_limit.api", at=EPOCH))
        for t in range(30, 400, 10):
            await r.round_at(t, err=0.2)
        history = await r.ref.ask(lambda x: RecoveryHistory(x))
        (record,) = history
    assert r.recovery.calls == [("rollback_setting", "rate_limit.api")]
    assert (record.action, record.target, record.detail) == (
        "rollback",
        "rate_limit.api",
        "rate_limit.api reverted to v1",
    )
    assert record.ts == EPOCH + 90  # fired after `for`


async def test_failed_recovery_is_audited_as_failed(rig: RigFactory) -> None:
    rule = AlertRule("ActorDown", "actor_down", Threshold(Op.GT, 0.5), actions=("restart",))
    policy = RecoveryPolicy("restart", ActionKind.RESTART_ACTOR)
    async with rig(_settings(rule, policies=(policy,))) as r:
        r.recovery.fail.add("restart_actor")
        await r.round_at(0, actor_down__actor_x=1.0)
        (record,) = await r.ref.ask(lambda x: RecoveryHistory(x))
    assert (record.outcome, record.detail) == ("failed", "RuntimeError: restart_actor refused")


async def test_scale_up_is_a_dry_run_by_default(rig: RigFactory) -> None:
    rule = AlertRule("Backlog", "queue_depth", Threshold(Op.GT, 100), actions=("scale",))
    policy = RecoveryPolicy("scale", ActionKind.SCALE_UP, scale_step=2)
    async with rig(_settings(rule, policies=(policy,))) as r:
        await r.round_at(0, queue_depth=500.0, workers_connected=3.0)
        await r.round_at(10, queue_depth=500.0, workers_connected=3.0)
        (record,) = await r.ref.ask(lambda x: RecoveryHistory(x))
    assert (record.outcome, record.detail) == ("dry_run", "would request capacity 5 (now 3)")
    assert r.recovery.calls == []


async def test_malformed_samples_are_dropped_without_stopping_the_round(rig: RigFactory) -> None:
    async with rig(_settings(CPU)) as r:
        r.clock.now = EPOCH
        r.samples.values = {"cpu": 50.0, "bad{key": 1.0, "none": None, "text": "x"}  # type: ignore[dict-item]
        await r.ref.ask(lambda x: SampleNow(x))
        status = await r.ref.ask(lambda x: GetStatus(x))
        series = await r.ref.ask(lambda x: ListSeries(x))
    assert (status.ticks, status.sample_errors, series) == (1, 3, ("cpu",))


async def test_default_settings_are_consistent() -> None:
    settings = MonitorSettings()
    assert {p.name for p in settings.policies} >= {a for rule in settings.rules for a in rule.actions}
    with pytest.raises(ValueError, match="unknown recovery policies"):
        MonitorSettings(rules=(AlertRule("R", "m", Threshold(Op.GT, 1), actions=("nope",)),))
    assert settings.rules[1].severity is Severity.CRITICAL
