"""Building `MonitorSettings` from plain YAML data (for the node's config loader).

Shape (every key optional; durations in seconds; ``rules``/``policies`` replace the defaults when given)::

    interval_s: 10
    repeat_interval_s: 14400
    retention_days: 30
    channels: [slack, oncall]
    disk_paths: [/, /var/lib/orch]
    rules:
      - {name: HighCpu, metric: system_cpu_percent, op: ">", value: 90, for: 300, severity: warning}
      - {name: LatencyAnomaly, metric: http_p95_seconds, anomaly: {span: 60, threshold: 5}, for: 60}
    policies:
      - {name: restart-actor, kind: restart_actor, escalate_after: 5, cooldown_s: 0}

Problems raise ``ValueError("monitor.rules[1].op: ...")``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

from actors.notifier.messages import Severity

from .ewma import Direction
from .settings import (
    DAY,
    ActionKind,
    AlertRule,
    Anomaly,
    Condition,
    MonitorSettings,
    Op,
    RecoveryPolicy,
    Threshold,
)

_SCALARS = {"interval_s", "repeat_interval_s", "maintenance_interval_s", "rollup_s", "action_timeout_s"}
_FLAGS = {"system_metrics", "notify_resolved"}


def settings_from_mapping(data: Mapping[str, Any], base: MonitorSettings | None = None) -> MonitorSettings:
    """Overlay ``data`` on ``base`` (default: the built-in defaults) and validate."""
    base = base or MonitorSettings()
    changes: dict[str, Any] = {}
    for key, value in data.items():
        where = f"monitor.{key}"
        if key in _SCALARS:
            changes[key] = _number(value, where)
        elif key in _FLAGS:
            changes[key] = _bool(value, where)
        elif key in ("retention_days", "raw_retention_days"):
            changes[key.replace("_days", "_s")] = _number(value, where) * DAY
        elif key in ("channels", "disk_paths"):
            changes[key] = _strings(value, where)
        elif key == "rules":
            changes[key] = tuple(
                rule_from_mapping(r, f"{where}[{i}]") for i, r in enumerate(_list(value, where))
            )
        elif key == "policies":
            changes[key] = tuple(
                policy_from_mapping(p, f"{where}[{i}]") for i, p in enumerate(_list(value, where))
            )
        else:
            raise ValueError(f"{where}: unknown key")
    try:
        return replace(base, **changes)
    except ValueError as exc:
        raise ValueError(f"monitor: {exc}") from None


def rule_from_mapping(data: Any, where: str) -> AlertRule:
    """One rule: ``name``, ``metric``, either ``op``+``value`` or ``anomaly``, and optional extras."""
    d = _mapping(data, where)
    _known(d, where, {"name", "metric", "op", "value", "anomaly", "for", "severity", "labels", "match",
                      "summary", "actions", "channels", "group_by"})  # fmt: skip
    try:
        return AlertRule(
            name=_str(d.get("name"), f"{where}.name"),
            metric=_str(d.get("metric"), f"{where}.metric"),
            condition=_condition(d, where),
            for_s=_number(d.get("for", 0), f"{where}.for"),
            severity=_enum(Severity, d.get("severity", "warning"), f"{where}.severity"),
            labels=_str_map(d.get("labels", {}), f"{where}.labels"),
            match=_str_map(d.get("match", {}), f"{where}.match"),
            summary=str(d.get("summary", "")),
            actions=_strings(d.get("actions", []), f"{where}.actions"),
            channels=None if d.get("channels") is None else _strings(d["channels"], f"{where}.channels"),
            group_by=_strings(d.get("group_by", ["alertname"]), f"{where}.group_by"),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def policy_from_mapping(data: Any, where: str) -> RecoveryPolicy:
    """One recovery policy: ``name``, ``kind`` and any `RecoveryPolicy` field."""
    d = dict(_mapping(data, where))
    allowed = {f.name for f in fields(RecoveryPolicy)}
    _known(d, where, allowed)
    d["kind"] = _enum(ActionKind, d.get("kind"), f"{where}.kind")
    if "hook_command" in d:
        d["hook_command"] = _strings(d["hook_command"], f"{where}.hook_command")
    try:
        return RecoveryPolicy(**d)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def _condition(d: Mapping[str, Any], where: str) -> Condition:
    if ("anomaly" in d) == ("op" in d):
        raise ValueError("give either op + value or anomaly")
    if "op" in d:
        return Threshold(_enum(Op, d["op"], f"{where}.op"), _number(d.get("value"), f"{where}.value"))
    a = _mapping(d["anomaly"], f"{where}.anomaly")
    _known(a, f"{where}.anomaly", {"span", "half_life", "threshold", "warmup", "direction"})
    return Anomaly.of(
        span=a.get("span"),
        half_life=a.get("half_life"),
        threshold=_number(a.get("threshold", 4.0), f"{where}.anomaly.threshold"),
        warmup=int(_number(a.get("warmup", 20), f"{where}.anomaly.warmup")),
        direction=_enum(Direction, a.get("direction", "up"), f"{where}.anomaly.direction"),
    )


def _known(d: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping")
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{where}: expected a list")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: expected a non-empty string")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    return tuple(_str(v, where) for v in _list(value, where))


def _str_map(value: Any, where: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in _mapping(value, where).items()}


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a number")
    return float(value)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: expected true or false")
    return value


def _enum(kind: Any, value: Any, where: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in kind)
        raise ValueError(f"{where}: expected one of {choices}") from None
