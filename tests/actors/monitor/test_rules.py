"""Alert rule engine on fake time and injected samples."""

from __future__ import annotations

import math
import random

from actors.monitor.messages import AlertState
from actors.monitor.rules import Change, RuleEngine, Transition, fingerprint
from actors.monitor.settings import DEFAULT_RULES, AlertRule, Anomaly, Op, Threshold
from actors.notifier.messages import Severity

CPU = AlertRule("HighCpu", "cpu", Threshold(Op.GT, 90), for_s=300, summary="CPU {value:.0f}% on {host}")


def _engine(*rules: AlertRule, repeat: float = 3600) -> RuleEngine:
    return RuleEngine(rules or (CPU,), repeat_interval_s=repeat)


def _drive(engine: RuleEngine, series: list[tuple[float, dict[str, float]]]) -> list[Transition]:
    out: list[Transition] = []
    for now, samples in series:
        out.extend(engine.evaluate(now, samples))
    return out


def _changes(transitions: list[Transition]) -> list[Change]:
    return [t.change for t in transitions]


def test_flap_shorter_than_for_raises_nothing() -> None:
    engine = _engine()
    samples = [(t, {"cpu": 95.0 if (t // 100) % 2 == 0 else 10.0}) for t in range(0, 2000, 10)]
    out = _drive(engine, samples)
    assert Change.FIRING not in _changes(out)
    assert engine.due_notifications(2000) == []


def test_sustained_breach_fires_once_and_resolves_once() -> None:
    engine = _engine()
    samples = [(t, {'cpu{host="a"}': 95.0}) for t in range(0, 1000, 10)]
    samples += [(t, {'cpu{host="a"}': 20.0}) for t in range(1000, 1500, 10)]
    out = _drive(engine, samples)
    assert _changes(out) == [Change.PENDING, Change.FIRING, Change.RESOLVED]
    pending, firing, resolved = (t.alert for t in out)
    assert pending.active_at == 0 and firing.fired_at == 300
    assert resolved.resolved_at == 1000 and resolved.state is AlertState.RESOLVED
    assert firing.summary == "CPU 95% on a"
    assert pending.fingerprint == firing.fingerprint == resolved.fingerprint


def test_each_series_is_its_own_alert_with_a_stable_fingerprint() -> None:
    rule = AlertRule("Backlog", "queue_depth", Threshold(Op.GT, 100))
    engine = _engine(rule)
    out = engine.evaluate(0, {'queue_depth{priority="1"}': 150, 'queue_depth{priority="9"}': 500})
    assert _changes(out) == [Change.FIRING, Change.FIRING]
    labels = out[0].alert.labels
    assert labels == {"priority": "1", "alertname": "Backlog", "severity": "warning"}
    assert out[0].alert.fingerprint == fingerprint(labels) != out[1].alert.fingerprint
    assert engine.evaluate(10, {'queue_depth{priority="1"}': 150, 'queue_depth{priority="9"}': 500}) == []


def test_label_matchers_restrict_the_series_a_rule_sees() -> None:
    rule = AlertRule("RootDisk", "disk", Threshold(Op.GT, 80), match={"path": "/"})
    engine = _engine(rule)
    out = engine.evaluate(0, {'disk{path="/"}': 90, 'disk{path="/data"}': 99})
    assert [t.alert.series for t in out] == ['disk{path="/"}']


def test_series_that_disappears_resolves_its_alert() -> None:
    engine = _engine(AlertRule("Stale", "hb_age", Threshold(Op.GT, 30)))
    engine.evaluate(0, {'hb_age{core="c1"}': 60})
    out = engine.evaluate(10, {})
    assert _changes(out) == [Change.RESOLVED]


def test_nan_sample_leaves_alert_state_alone() -> None:
    engine = _engine()
    engine.evaluate(0, {"cpu": 95})
    assert engine.evaluate(100, {"cpu": math.nan}) == []
    assert _changes(engine.evaluate(300, {"cpu": 95})) == [Change.FIRING]


def test_repeat_notifications_are_suppressed_until_the_repeat_interval() -> None:
    engine = _engine(AlertRule("Down", "up", Threshold(Op.LT, 1)), repeat=600)
    engine.evaluate(0, {"up": 0})
    due = engine.due_notifications(0)
    assert len(due) == 1
    engine.mark_notified([due[0].fingerprint], 0)
    for t in range(10, 600, 10):
        engine.evaluate(t, {"up": 0})
        assert engine.due_notifications(t) == []
    engine.evaluate(600, {"up": 0})
    assert [a.fingerprint for a in engine.due_notifications(600)] == [due[0].fingerprint]


def test_restore_adopts_firing_alerts_so_they_do_not_fire_twice() -> None:
    first = _engine()
    _drive(first, [(t, {"cpu": 95.0}) for t in range(0, 400, 10)])
    second = _engine()
    second.restore(first.active())
    out = _drive(second, [(400, {"cpu": 95.0}), (410, {"cpu": 5.0})])
    assert _changes(out) == [Change.RESOLVED]


def test_anomaly_rule_fires_on_a_spike_and_not_on_a_ramp() -> None:
    rule = AlertRule("LatencyAnomaly", "p95", Anomaly.of(span=30), severity=Severity.CRITICAL)
    rng = random.Random(3)
    flat = [0.2 + rng.gauss(0, 0.01) for _ in range(100)]
    ramp = [flat[-1] + 0.002 * i for i in range(300)]
    engine = _engine(rule)
    out = _drive(engine, [(i, {"p95": v}) for i, v in enumerate(flat + ramp)])
    assert out == []
    out = engine.evaluate(1000, {"p95": 5.0})
    assert _changes(out) == [Change.FIRING]


def test_anomaly_rule_replay_is_deterministic() -> None:
    rule = AlertRule("A", "x", Anomaly.of(half_life=10, warmup=5), for_s=2)
    rng = random.Random(11)
    series = [(t, {"x": rng.choice([1.0, 1.1, 0.9, 9.0])}) for t in range(500)]
    assert _drive(_engine(rule), series) == _drive(_engine(rule), series)


def test_default_rules_cover_the_seed() -> None:
    names = {r.name for r in DEFAULT_RULES}
    assert {"HighCpu", "HighMemory", "LongLockWaits", "QueueBacklog", "HighErrorRate"} <= names
    assert {"SlowRequests", "DiskFilling", "DatabaseErrors", "AuthFailures"} <= names
    cpu = next(r for r in DEFAULT_RULES if r.name == "HighCpu")
    assert cpu.for_s == 300 and cpu.condition == Threshold(Op.GT, 90)


def test_bad_summary_template_falls_back_instead_of_raising() -> None:
    rule = AlertRule("R", "m", Threshold(Op.GT, 0), summary="{value:.2q} {missing:.1f}")
    out = _engine(rule).evaluate(0, {"m": 1.0})
    assert out[0].alert.summary == "R: m = 1"
