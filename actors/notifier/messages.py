"""What the notifier accepts: notifications to deliver, and operator queries about its channels.

The notifier delivers to Slack incoming webhooks, Standard-Webhooks-signed HTTP endpoints and SMTP. Senders
``tell`` it a `Notify` (use ``tell_nowait`` from anything time-critical: a full mailbox raises
``MailboxFull`` rather than blocking the sender). Delivery happens in background tasks per channel, so
one slow endpoint delays neither the sender nor the other channels.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime import DomainError, Reply


class Severity(enum.StrEnum):
    """How urgent a notification is; channels can drop what is below their minimum."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical."""
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class NotificationKind(enum.StrEnum):
    """What a notification is about (becomes the webhook event ``type``: ``orch.<kind>``)."""

    ALERT = "alert"
    RECOVERY = "recovery"
    ESCALATION = "escalation"
    SCALE_UP = "scale_up"


@dataclass(frozen=True, slots=True)
class AlertInfo:
    """One alert inside a (possibly grouped) alert notification."""

    fingerprint: str
    name: str
    status: str  # "firing" | "resolved"
    severity: Severity
    summary: str
    labels: Mapping[str, str]
    value: float | None
    starts_at: float
    ends_at: float | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """Something to tell humans or systems. ``id`` is unique (it is the Standard Webhooks ``webhook-id``).

    ``channels`` None means every configured channel whose minimum severity this meets; a tuple names the
    channels explicitly (still filtered by severity).
    """

    id: str
    kind: NotificationKind
    title: str
    severity: Severity
    created_at: float
    status: str = "firing"
    alerts: tuple[AlertInfo, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    channels: tuple[str, ...] | None = None
    group_key: str = ""


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """A channel's health and counters. Never carries URLs or credentials."""

    name: str
    kind: str  # "slack" | "webhook" | "email"
    enabled: bool
    disabled_reason: str | None
    queued: int
    in_flight: int
    delivered: int
    failed: int
    dropped: int
    last_error: str | None
    last_success_at: float | None


class UnknownChannel(DomainError):
    """No channel has that name."""


# --- messages ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notify:
    """Deliver ``notification`` to its channels (fire-and-forget; outcomes show in `ChannelStatus`)."""

    notification: Notification


@dataclass(frozen=True, slots=True)
class ListChannels:
    """Status of every configured channel, in configuration order."""

    reply: Reply[tuple[ChannelStatus, ...]]


@dataclass(frozen=True, slots=True)
class EnableChannel:
    """Re-enable a channel that was disabled (e.g. Slack answered 404/410 after the webhook was fixed)."""

    name: str
    reply: Reply[ChannelStatus]


@dataclass(frozen=True, slots=True)
class Flush:
    """Answer once nothing is queued or in flight on any channel (deliveries finished or given up)."""

    reply: Reply[None]


NotifierMsg = Notify | ListChannels | EnableChannel | Flush
