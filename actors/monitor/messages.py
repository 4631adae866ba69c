"""What the monitor accepts and answers: alert, silence, history and recovery queries, and setting changes.

The node maps these onto its endpoints (list alerts, silence, metric history, recovery history) and tells
the monitor `SettingChanged` whenever an operator changes a runtime setting, so that a rollback policy can
revert it if an alert starts right after.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from actors.notifier.messages import Severity
from runtime import DomainError, Reply


class AlertState(enum.StrEnum):
    """Lifecycle state of one alert."""

    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Alert:
    """A snapshot of one alert (one rule on one series, one episode)."""

    fingerprint: str
    rule: str
    series: str
    labels: Mapping[str, str]
    state: AlertState
    severity: Severity
    summary: str
    value: float
    active_at: float  # when the condition started holding
    fired_at: float | None = None
    resolved_at: float | None = None
    last_notified_at: float | None = None
    actions: tuple[str, ...] = ()
    channels: tuple[str, ...] | None = None
    group_key: str = ""


@dataclass(frozen=True, slots=True)
class SilenceInfo:
    """Mutes notifications of alerts whose labels include all ``matchers``, during [starts_at, ends_at)."""

    id: str
    matchers: Mapping[str, str]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        """True if this silence is active at ``now`` and matches ``labels``."""
        return self.starts_at <= now < self.ends_at and all(
            labels.get(k) == v for k, v in self.matchers.items()
        )


@dataclass(frozen=True, slots=True)
class RecoveryRecord:
    """One audited recovery action and its outcome."""

    id: int
    ts: float
    policy: str
    action: str  # ActionKind value, or "restore_core" / "escalate"
    target: str
    alert: str | None  # fingerprint of the alert that caused it
    outcome: str  # "ok" | "failed" | "dry_run" | "escalated" | "skipped"
    attempt: int
    detail: str


@dataclass(frozen=True, slots=True)
class SeriesHistory:
    """Points of one series, oldest first; averaged into ``step_s`` buckets when the range is long."""

    series: str
    points: tuple[tuple[float, float], ...]
    step_s: float | None  # None: raw points


@dataclass(frozen=True, slots=True)
class MonitorStatus:
    """Counters for operators and tests."""

    ticks: int
    last_tick_at: float | None
    last_tick_duration_s: float | None
    series: int
    alerts_pending: int
    alerts_firing: int
    isolated_cores: tuple[str, ...]
    notifications_sent: int
    notifications_dropped: int
    sample_errors: int


class InvalidQuery(DomainError):
    """A query or silence with bad parameters."""


# --- messages ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListAlerts:
    """Alerts, newest first; ``state`` None lists pending and firing ones plus recently resolved ones."""

    reply: Reply[tuple[Alert, ...]]
    state: AlertState | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class Silence:
    """Mute notifications for alerts matching ``matchers`` for ``duration_s`` (alerts still fire and log)."""

    matchers: Mapping[str, str]
    duration_s: float
    created_by: str
    reply: Reply[SilenceInfo]
    comment: str = ""


@dataclass(frozen=True, slots=True)
class ExpireSilence:
    """End a silence now; answers False if there was no active silence with that id."""

    silence_id: str
    reply: Reply[bool]


@dataclass(frozen=True, slots=True)
class ListSilences:
    """Silences still active (or all, including expired ones, if ``include_expired``)."""

    reply: Reply[tuple[SilenceInfo, ...]]
    include_expired: bool = False


@dataclass(frozen=True, slots=True)
class MetricHistory:
    """Points of ``series`` (a key like ``queue_depth{priority="5"}``) between ``since`` and ``until``."""

    series: str
    since: float
    until: float
    reply: Reply[SeriesHistory]
    max_points: int = 500


@dataclass(frozen=True, slots=True)
class ListSeries:
    """Known series keys, optionally only those starting with ``prefix``."""

    reply: Reply[tuple[str, ...]]
    prefix: str = ""
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class RecoveryHistory:
    """Recovery actions, newest first, optionally for one target."""

    reply: Reply[tuple[RecoveryRecord, ...]]
    target: str | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class SettingChanged:
    """Runtime setting ``key`` changed at ``at`` (unix seconds; None: now). Rollback policies revert settings
    changed shortly before an alert became active."""

    key: str
    at: float | None = None


@dataclass(frozen=True, slots=True)
class SampleNow:
    """Take a sample and evaluate the rules now (in addition to the interval); answers when done."""

    reply: Reply[None]


@dataclass(frozen=True, slots=True)
class GetStatus:
    """Monitor counters."""

    reply: Reply[MonitorStatus]


MonitorMsg = (
    ListAlerts
    | Silence
    | ExpireSilence
    | ListSilences
    | MetricHistory
    | ListSeries
    | RecoveryHistory
    | SettingChanged
    | SampleNow
    | GetStatus
)
