"""MonitorSettings from YAML-shaped data."""

from __future__ import annotations

import pytest
import yaml

from actors.monitor.config import settings_from_mapping
from actors.monitor.ewma import Direction
from actors.monitor.settings import DAY, ActionKind, Anomaly, MonitorSettings, Op, Threshold
from actors.notifier.messages import Severity

YAML = """
interval_s: 1
retention_days: 7
channels: [slack]
rules:
  - {name: HighCpu, metric: system_cpu_percent, op: ">", value: 90, for: 300}
  - name: LatencyAnomaly
    metric: http_p95_seconds
    anomaly: {half_life: 30, threshold: 5, direction: both}
    severity: critical
    actions: [restart]
    match: {route: /dispatch}
policies:
  - {name: restart, kind: restart_actor, escalate_after: 3, backoff_max_s: 60}
"""


def test_yaml_builds_settings_with_rules_and_policies() -> None:
    settings = settings_from_mapping(yaml.safe_load(YAML))
    assert (settings.interval_s, settings.retention_s, settings.channels) == (1.0, 7 * DAY, ("slack",))
    cpu, latency = settings.rules
    assert cpu.condition == Threshold(Op.GT, 90) and cpu.for_s == 300 and cpu.severity is Severity.WARNING
    assert isinstance(latency.condition, Anomaly)
    assert latency.condition.config.threshold == 5 and latency.condition.config.direction is Direction.BOTH
    assert latency.match == {"route": "/dispatch"} and latency.actions == ("restart",)
    (policy,) = settings.policies
    assert (policy.kind, policy.escalate_after, policy.backoff_max_s) == (ActionKind.RESTART_ACTOR, 3, 60)


def test_empty_mapping_keeps_the_defaults() -> None:
    assert settings_from_mapping({}) == MonitorSettings()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"interval": 1}, r"monitor\.interval: unknown key"),
        ({"rules": [{"name": "R", "metric": "m", "op": "~", "value": 1}]}, r"monitor\.rules\[0\]\.op"),
        ({"rules": [{"name": "R", "metric": "m"}]}, r"either op \+ value or anomaly"),
        ({"rules": [{"name": "R", "metric": "m", "op": ">", "value": "x"}]}, r"rules\[0\]\.value"),
        ({"rules": [{"name": "R", "metric": "m", "op": ">", "value": 1, "actions": ["x"]}]}, "unknown rec"),
        ({"policies": [{"name": "p", "kind": "reboot"}]}, r"policies\[0\]\.kind"),
        ({"interval_s": True}, "expected a number"),
    ],
)
def test_bad_configuration_names_the_offending_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings_from_mapping(data)
