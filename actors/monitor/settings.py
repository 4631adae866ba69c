"""`MonitorSettings`: rules, intervals, retention, recovery policies and routing; built by the node from YAML.

Channel *definitions* (URLs, secrets) belong to the notifier's own settings: the monitor only names the
channels its notifications go to, so it never holds a credential.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from actors.notifier.messages import Severity

from .ewma import Direction, EwmaConfig

DAY = 86_400.0


class Op(enum.StrEnum):
    """Threshold comparison."""

    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    EQ = "=="
    NE = "!="

    def holds(self, value: float, threshold: float) -> bool:
        """``value <op> threshold`` (always False for NaN)."""
        return _OPS[self](value, threshold)


_OPS: dict[Op, Callable[[float, float], bool]] = {
    Op.GT: operator.gt,
    Op.GE: operator.ge,
    Op.LT: operator.lt,
    Op.LE: operator.le,
    Op.EQ: operator.eq,
    Op.NE: operator.ne,
}


@dataclass(frozen=True, slots=True)
class Threshold:
    """Breach while ``value <op> value``."""

    op: Op
    value: float


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Breach while the series' EWMA detector calls the point anomalous (see `actors.monitor.ewma`)."""

    config: EwmaConfig = field(default_factory=lambda: EwmaConfig(EwmaConfig.alpha_from_span(30)))

    @classmethod
    def of(
        cls,
        *,
        span: float | None = None,
        half_life: float | None = None,
        threshold: float = 4.0,
        warmup: int = 20,
        direction: Direction = Direction.UP,
    ) -> Anomaly:
        """Build from a span or a half-life (in points), exactly one of them."""
        if (span is None) == (half_life is None):
            raise ValueError("give exactly one of span or half_life")
        alpha = (
            EwmaConfig.alpha_from_span(span)
            if span is not None
            else EwmaConfig.alpha_from_half_life(half_life)  # type: ignore[arg-type]  # checked above
        )
        return cls(EwmaConfig(alpha, threshold=threshold, warmup=warmup, direction=direction))


Condition = Threshold | Anomaly


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One alerting rule over every series named ``metric`` whose labels match ``match``.

    ``for_s``: the condition must hold that long (pending) before the alert fires. ``summary`` is a
    `str.format` template over the alert's labels plus ``value``. ``actions`` name `RecoveryPolicy`s run
    while the alert fires; ``channels`` overrides `MonitorSettings.channels`.
    """

    name: str
    metric: str
    condition: Condition
    for_s: float = 0.0
    severity: Severity = Severity.WARNING
    labels: Mapping[str, str] = field(default_factory=dict)
    match: Mapping[str, str] = field(default_factory=dict)
    summary: str = ""
    actions: tuple[str, ...] = ()
    channels: tuple[str, ...] | None = None
    group_by: tuple[str, ...] = ("alertname",)

    def __post_init__(self) -> None:
        if not self.name or not self.metric:
            raise ValueError("a rule needs a name and a metric")
        if self.for_s < 0:
            raise ValueError(f"rule {self.name!r}: for_s must be >= 0")


class ActionKind(enum.StrEnum):
    """What a recovery policy does."""

    RESTART_ACTOR = "restart_actor"  # RecoveryPort.restart_actor(labels[target_label])
    REQUEUE_CORE = "requeue_core"  # RecoveryPort.requeue_core(labels[target_label])
    ISOLATE_CORE = "isolate_core"  # isolate now, restore after restore_after_s healthy
    ROLLBACK = "rollback"  # settings changed within rollback_window_s before the alert
    SCALE_UP = "scale_up"  # hook with the desired capacity; dry-run by default


_DEFAULT_TARGET = {
    ActionKind.RESTART_ACTOR: "actor",
    ActionKind.REQUEUE_CORE: "core",
    ActionKind.ISOLATE_CORE: "core",
}


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    """A recovery action with its rate limits and Kubernetes-style escalation.

    Per target (the actor, the core, ...): at least ``cooldown_s`` between attempts and a restart backoff
    of ``backoff_initial_s`` doubling up to ``backoff_max_s``; after ``escalate_after`` attempts the policy
    stops acting on that target and escalates; the count resets once the target was healthy for
    ``reset_after_s``. Across all targets: at most ``max_per_window`` attempts per ``window_s``.
    """

    name: str
    kind: ActionKind
    target_label: str | None = None
    cooldown_s: float = 0.0
    max_per_window: int = 10
    window_s: float = 3600.0
    escalate_after: int = 5
    backoff_initial_s: float = 10.0
    backoff_max_s: float = 300.0
    reset_after_s: float = 600.0
    fallback_core: str | None = None  # isolate: where the isolated core's work goes
    restore_after_s: float = 60.0  # isolate: healthy this long before the core is restored
    rollback_window_s: float = 600.0  # rollback: changes this recent before the alert are suspects
    dry_run: bool = True  # scale-up
    scale_step: int = 1
    scale_max: int = 64
    capacity_metric: str = "workers_connected"
    hook_command: tuple[str, ...] = ()  # scale-up: run with the desired capacity appended
    hook_channel: str | None = None  # scale-up: notifier channel (signed webhook) that gets the request

    def __post_init__(self) -> None:
        if self.max_per_window < 1 or self.escalate_after < 1:
            raise ValueError(f"policy {self.name!r}: max_per_window and escalate_after must be >= 1")
        if min(self.cooldown_s, self.backoff_initial_s, self.window_s, self.reset_after_s) < 0:
            raise ValueError(f"policy {self.name!r}: durations must be >= 0")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(f"policy {self.name!r}: backoff_max_s < backoff_initial_s")

    @property
    def target(self) -> str | None:
        """The alert label that names the thing acted on (None: the action has no per-label target)."""
        return self.target_label or _DEFAULT_TARGET.get(self.kind)


def _rule(name: str, metric: str, op: Op, value: float, **kw: object) -> AlertRule:
    return AlertRule(name, metric, Threshold(op, value), **kw)  # type: ignore[arg-type]


# The seed's rules. Metric names are the contract with the node's `SampleSource` (see `actors.monitor.ports`).
DEFAULT_RULES: tuple[AlertRule, ...] = (
    _rule("HighCpu", "system_cpu_percent", Op.GT, 90, for_s=300, summary="CPU at {value:.0f}%"),
    _rule(
        "HighMemory",
        "system_memory_percent",
        Op.GT,
        95,
        for_s=120,
        severity=Severity.CRITICAL,
        summary="memory at {value:.0f}%",
    ),
    _rule("DiskFilling", "disk_used_percent", Op.GT, 80, summary="disk {path} at {value:.0f}%"),
    _rule("LongLockWaits", "lock_wait_p95_seconds", Op.GT, 30, summary="lock wait p95 {value:.0f}s"),
    _rule(
        "QueueBacklog", "queue_depth", Op.GT, 100, summary="{value:.0f} tasks queued at priority {priority}"
    ),
    _rule(
        "HighErrorRate",
        "http_error_ratio",
        Op.GT,
        0.05,
        for_s=600,
        severity=Severity.CRITICAL,
        summary="HTTP error rate {value:.1%}",
        actions=("rollback",),
    ),
    _rule("SlowRequests", "http_p95_seconds", Op.GT, 2.0, summary="HTTP p95 {value:.2f}s"),
    _rule(
        "DatabaseErrors",
        "db_errors_per_s",
        Op.GT,
        0,
        severity=Severity.CRITICAL,
        summary="database errors: {value:.2f}/s",
    ),
    _rule("AuthFailures", "auth_failures_per_s", Op.GT, 1.0, for_s=60, summary="{value:.1f} failed logins/s"),
    _rule(
        "ActorDown",
        "actor_down",
        Op.GT,
        0.5,
        severity=Severity.CRITICAL,
        summary="actor {actor} is down",
        actions=("restart-actor",),
    ),
    _rule(
        "CoreHeartbeatLost",
        "core_heartbeat_age_seconds",
        Op.GT,
        30,
        severity=Severity.CRITICAL,
        summary="core {core}: no worker heartbeat for {value:.0f}s",
        actions=("requeue-core", "isolate-core"),
    ),
)

DEFAULT_POLICIES: tuple[RecoveryPolicy, ...] = (
    RecoveryPolicy("restart-actor", ActionKind.RESTART_ACTOR),
    RecoveryPolicy("requeue-core", ActionKind.REQUEUE_CORE, cooldown_s=30.0),
    RecoveryPolicy("isolate-core", ActionKind.ISOLATE_CORE),
    RecoveryPolicy("rollback", ActionKind.ROLLBACK, escalate_after=3),
    RecoveryPolicy("scale-up", ActionKind.SCALE_UP, cooldown_s=600.0),
)


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    """Everything the monitor needs from configuration (frozen; the node builds it from YAML)."""

    interval_s: float = 10.0
    rules: tuple[AlertRule, ...] = DEFAULT_RULES
    policies: tuple[RecoveryPolicy, ...] = DEFAULT_POLICIES
    repeat_interval_s: float = 4 * 3600.0
    retention_s: float = 30 * DAY
    raw_retention_s: float = 1 * DAY  # older raw points are folded into rollups of rollup_s
    rollup_s: float = 300.0
    maintenance_interval_s: float = 3600.0
    disk_paths: tuple[str, ...] = ("/",)
    system_metrics: bool = True
    channels: tuple[str, ...] | None = None  # default notification routing; None = all channels
    notify_resolved: bool = True
    action_timeout_s: float = 30.0  # a recovery action that takes longer counts as failed

    def __post_init__(self) -> None:
        if self.interval_s < 0.05:
            raise ValueError("interval_s must be >= 0.05")
        if self.raw_retention_s > self.retention_s or self.rollup_s <= 0:
            raise ValueError("need rollup_s > 0 and raw_retention_s <= retention_s")
        _check_unique("rule", [r.name for r in self.rules])
        _check_unique("policy", [p.name for p in self.policies])
        known = {p.name for p in self.policies}
        for rule in self.rules:
            missing = [a for a in rule.actions if a not in known]
            if missing:
                raise ValueError(f"rule {rule.name!r} names unknown recovery policies {missing}")

    def policy(self, name: str) -> RecoveryPolicy:
        """The policy called ``name``."""
        for policy in self.policies:
            if policy.name == name:
                return policy
        raise KeyError(name)


def _check_unique(what: str, names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate {what} names: {dupes}")
