"""Notifier configuration: channels (with their secrets) and the retry policy; built by the node from YAML.

Secrets (webhook URLs, signing keys, SMTP passwords) are excluded from ``repr`` so settings can be logged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .messages import Severity
from .signing import WebhookSigner


class SmtpSecurity(enum.StrEnum):
    """How the SMTP connection is protected."""

    STARTTLS = "starttls"
    SSL = "ssl"  # implicit TLS (port 465)
    NONE = "none"  # local relays and tests only


@dataclass(frozen=True, slots=True)
class SlackChannel:
    """A Slack incoming webhook."""

    name: str
    webhook_url: str = field(repr=False)
    min_severity: Severity = Severity.WARNING


@dataclass(frozen=True, slots=True)
class WebhookChannel:
    """A generic HTTP endpoint receiving Standard-Webhooks-signed JSON (unsigned if ``secret`` is None)."""

    name: str
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    min_severity: Severity = Severity.INFO

    def __post_init__(self) -> None:
        if self.secret is not None:
            WebhookSigner.from_secret(self.secret)  # fail at configuration time, not at the first alert


@dataclass(frozen=True, slots=True)
class EmailChannel:
    """Email over SMTP (smtplib in a worker thread)."""

    name: str
    host: str
    sender: str
    recipients: tuple[str, ...]
    port: int = 587
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    min_severity: Severity = Severity.WARNING

    def __post_init__(self) -> None:
        if not self.recipients:
            raise ValueError(f"email channel {self.name!r} has no recipients")


Channel = SlackChannel | WebhookChannel | EmailChannel


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff between delivery attempts; ``Retry-After`` is honoured up to ``max_delay_s``."""

    max_attempts: int = 6
    initial_delay_s: float = 1.0
    max_delay_s: float = 300.0
    multiplier: float = 2.0
    jitter: float = 0.1  # +- this fraction of each delay

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.initial_delay_s < 0 or self.max_delay_s < self.initial_delay_s:
            raise ValueError("bad retry policy")

    def delay(self, attempt: int, unit_random: float = 0.5) -> float:
        """Delay after failed attempt number ``attempt`` (1-based); ``unit_random`` in [0, 1) jitters it."""
        base = min(self.initial_delay_s * self.multiplier ** (attempt - 1), self.max_delay_s)
        return max(0.0, base * (1.0 + self.jitter * (2.0 * unit_random - 1.0)))


@dataclass(frozen=True, slots=True)
class NotifierSettings:
    """Channels plus delivery limits. Attempt limits are enforced with cancel scopes, not API timeouts."""

    channels: tuple[Channel, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    queue_capacity: int = 200  # per channel; the oldest queued notification is dropped when full
    attempt_timeout_s: float = 15.0
    public_url: str | None = None  # links back to the orch UI/API in messages

    def __post_init__(self) -> None:
        names = [c.name for c in self.channels]
        if len(names) != len(set(names)):
            raise ValueError("duplicate notification channel names")
        if self.queue_capacity < 1 or self.attempt_timeout_s <= 0:
            raise ValueError("queue_capacity must be >= 1 and attempt_timeout_s > 0")
