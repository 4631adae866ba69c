"""Monitoring wiring pieces without a node: config -> settings, runtime-settings versions, quantiles."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from actors.notifier import EmailChannel, SmtpSecurity, WebhookChannel
from orch.config import ConfigError, load_config
from orch.monitor_cores import core_series
from orch.monitor_samples import quantile_from_buckets
from orch.monitoring import monitor_settings, notifier_settings, policies_from_json, policies_to_json
from orch.runtime_settings import NoGoodVersion, RuntimeSettings


def _config(**overrides: Any) -> Any:
    return load_config(env={}, overrides=overrides)


def test_config_interval_and_retention_reach_the_monitor() -> None:
    s = monitor_settings(_config(**{"monitoring.sample_interval": 1, "monitoring.retention_days": 7}))
    assert s.interval_s == 1.0 and s.retention_s == 7 * 86_400
    assert {r.name for r in s.rules} >= {"HighCpu", "ActorDown", "CoreHeartbeatLost"}


def test_rules_file_overlays_and_its_errors_name_the_key(tmp_path: Path) -> None:
    good = tmp_path / "rules.yaml"
    good.write_text("rules:\n  - {name: Slow, metric: http_p95_seconds, op: '>', value: 1, for: 2}\n")
    s = monitor_settings(_config(**{"monitoring.rules_file": good}))
    assert [(r.name, r.for_s) for r in s.rules] == [("Slow", 2.0)]
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {name: Slow, metric: x, op: '~', value: 1}\n")
    with pytest.raises(ConfigError, match=r"monitoring.rules_file: .*monitor.rules\[0\].op"):
        monitor_settings(_config(**{"monitoring.rules_file": bad}))
    with pytest.raises(ConfigError, match="not found"):
        monitor_settings(_config(**{"monitoring.rules_file": tmp_path / "missing.yaml"}))


def test_notification_channels_come_from_config_and_secrets_stay_out_of_repr() -> None:
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    n = notifier_settings(
        _config(
            **{
                "notifications.webhook_url": "http://127.0.0.1:9/hook?token=s3cr3t",
                "notifications.webhook_secret": secret,
                "notifications.smtp_host": "127.0.0.1",
                "notifications.smtp_security": "none",
                "notifications.email_from": "orch@example.test",
                "notifications.email_to": "a@example.test,b@example.test",
            }
        )
    )
    webhook, email = n.channels
    assert isinstance(webhook, WebhookChannel) and isinstance(email, EmailChannel)
    assert email.security is SmtpSecurity.NONE and email.recipients == ("a@example.test", "b@example.test")
    assert "s3cr3t" not in repr(n) and secret not in repr(n)
    with pytest.raises(ConfigError, match="webhook_secret"):
        notifier_settings(
            _config(**{"notifications.webhook_url": "http://x", "notifications.webhook_secret": "nope"})
        )
    with pytest.raises(ConfigError, match="email_to"):
        notifier_settings(_config(**{"notifications.smtp_host": "127.0.0.1"}))


def test_rate_limit_json_round_trips_and_names_a_bad_class() -> None:
    policies = policies_from_json({"default": "600/60", "read": "10/1/5"})
    assert policies_to_json(policies) == {"default": "600/60", "read": "10/1/5"}
    with pytest.raises(ValueError, match="read"):
        policies_from_json({"read": "ten/60"})


async def test_rollback_reapplies_the_last_good_version_and_marks_the_bad_one() -> None:
    applied: list[Any] = []
    changes: list[str] = []

    async def apply(value: Any) -> None:
        if value == "refused":
            raise ValueError("refused")
        applied.append(value)

    reg = RuntimeSettings(clock=lambda: 100.0)
    reg.register("k", apply, "a")
    reg.on_change(lambda key, at: changes.append(key))
    with pytest.raises(NoGoodVersion):
        await reg.rollback("k")
    await reg.change("k", "b", by="alice")
    with pytest.raises(ValueError, match="refused"):
        await reg.change("k", "refused", by="alice")
    assert reg.current("k").value == "b"  # a refused value is not recorded
    restored = await reg.rollback("k")
    assert (restored.version, restored.value, applied) == (3, "a", ["b", "a"])
    assert [(v.version, v.value, v.rolled_back) for v in reg.history("k")] == [
        (1, "a", False),
        (2, "b", True),
        (3, "a", False),
    ]
    assert changes == ["k"]  # rollbacks are not reported as changes (they must not become suspects)


def test_quantile_interpolates_like_prometheus() -> None:
    buckets = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (math.inf, 100.0)]
    assert quantile_from_buckets(0.5, buckets) == pytest.approx(0.1)
    assert quantile_from_buckets(0.95, buckets) == pytest.approx(0.75)
    assert quantile_from_buckets(0.99, [(1.0, 0.0), (math.inf, 10.0)]) == 1.0  # +Inf: highest finite bound
    assert quantile_from_buckets(0.95, [(1.0, 0.0), (math.inf, 0.0)]) is None


def test_core_series_report_heartbeat_age_only_while_tasks_are_held() -> None:
    from actors.dispatcher.messages import CoreHealthView

    def view(core: str, claimed: int, stalest: float | None, isolated: bool = False) -> CoreHealthView:
        return CoreHealthView(core, 0, claimed, 0, isolated, None, None, None, 2, None, stalest, stalest)

    out = core_series((view("a", 1, 90.0), view("b", 0, None, isolated=True)), now=100.0)
    assert out['core_heartbeat_age_seconds{core="a"}'] == 10.0
    assert 'core_heartbeat_age_seconds{core="b"}' not in out
    assert out['core_isolated{core="b"}'] == 1.0 and out['core_waiting_workers{core="a"}'] == 2
