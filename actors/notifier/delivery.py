"""How to read a delivery attempt's answer: delivered, retry (maybe after a delay), give up, or disable.

Slack incoming webhooks: only ``200`` with body ``ok`` is success; 404/410 (channel or webhook gone) disable
the channel until an operator re-enables it; 429 retries after ``Retry-After``; other 4xx are permanent.
Generic webhooks (Standard Webhooks conventions): any 2xx is success; 410 disables; 408/425/429 and 5xx are
retried; other 4xx are permanent. Pure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime


class Outcome(enum.StrEnum):
    """What to do after an attempt."""

    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"  # permanent for this notification
    DISABLE = "disable"  # permanent for the whole channel


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """An attempt's classification; ``reason`` is safe to log (no URLs, no secrets)."""

    outcome: Outcome
    reason: str
    retry_after: float | None = None


_RETRYABLE_4XX = frozenset({408, 425, 429})


def classify_slack(status: int, body: str, retry_after: str | None, now: float) -> AttemptResult:
    """Classify a Slack incoming-webhook response."""
    if status == 200:
        if body.strip() == "ok":
            return AttemptResult(Outcome.DELIVERED, "200 ok")
        return AttemptResult(Outcome.RETRY, f"200 with unexpected body {body.strip()[:40]!r}")
    detail = f"{status} {body.strip()[:60]}".strip()
    if status in (404, 410):
        return AttemptResult(Outcome.DISABLE, detail)
    return _by_status(status, detail, retry_after, now)


def classify_webhook(status: int, retry_after: str | None, now: float) -> AttemptResult:
    """Classify a generic webhook response."""
    if 200 <= status < 300:
        return AttemptResult(Outcome.DELIVERED, str(status))
    if status == 410:
        return AttemptResult(Outcome.DISABLE, "410 gone")
    return _by_status(status, str(status), retry_after, now)


def _by_status(status: int, detail: str, retry_after: str | None, now: float) -> AttemptResult:
    if status >= 500 or status in _RETRYABLE_4XX:
        return AttemptResult(Outcome.RETRY, detail, parse_retry_after(retry_after, now))
    return AttemptResult(Outcome.FAILED, detail)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent/invalid."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def classify_smtp_code(code: int, what: str) -> AttemptResult:
    """SMTP reply codes: 4xx are transient (retry), 5xx permanent."""
    if 400 <= code < 500:
        return AttemptResult(Outcome.RETRY, f"smtp {code} ({what})")
    return AttemptResult(Outcome.FAILED, f"smtp {code} ({what})")
