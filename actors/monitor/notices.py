"""Turning alerts and recovery actions into notifier `Notification`s: grouping, routing. Pure."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from actors.notifier.messages import AlertInfo, Notification, NotificationKind, Severity

from .messages import Alert, AlertState, RecoveryRecord


def new_id() -> str:
    """A unique notification id (the Standard Webhooks ``webhook-id``)."""
    return f"msg_{uuid.uuid4().hex}"


def group_alerts(
    alerts: Iterable[Alert], status: AlertState, now: float, default_channels: tuple[str, ...] | None
) -> list[Notification]:
    """One notification per (group key, routing): alerts that fire or resolve together go out together."""
    groups: dict[tuple[str, tuple[str, ...] | None], list[Alert]] = {}
    for alert in alerts:
        channels = alert.channels if alert.channels is not None else default_channels
        groups.setdefault((alert.group_key, channels), []).append(alert)
    out = []
    for (group_key, channels), members in groups.items():
        members.sort(key=lambda a: (a.rule, a.series))
        severity = max((a.severity for a in members), key=lambda s: s.rank)
        rules = sorted({a.rule for a in members})
        out.append(
            Notification(
                id=new_id(),
                kind=NotificationKind.ALERT,
                title=", ".join(rules),
                severity=severity,
                created_at=now,
                status=status.value,
                alerts=tuple(alert_info(a) for a in members),
                channels=channels,
                group_key=group_key,
            )
        )
    return out


def alert_info(alert: Alert) -> AlertInfo:
    """The notifier's view of one alert."""
    return AlertInfo(
        fingerprint=alert.fingerprint,
        name=alert.rule,
        status="resolved" if alert.state is AlertState.RESOLVED else "firing",
        severity=alert.severity,
        summary=alert.summary,
        labels=dict(alert.labels),
        value=alert.value,
        starts_at=alert.fired_at if alert.fired_at is not None else alert.active_at,
        ends_at=alert.resolved_at,
    )


def recovery_notice(
    record: RecoveryRecord, channels: tuple[str, ...] | None, extra: Mapping[str, Any] | None = None
) -> Notification:
    """A notification about a recovery action (critical when it escalates or fails)."""
    escalated = record.outcome == "escalated"
    severity = Severity.CRITICAL if escalated or record.outcome == "failed" else Severity.WARNING
    kind = NotificationKind.ESCALATION if escalated else NotificationKind.RECOVERY
    details: dict[str, Any] = {
        "policy": record.policy,
        "action": record.action,
        "target": record.target,
        "outcome": record.outcome,
        "attempt": record.attempt,
        "detail": record.detail,
    }
    details.update(extra or {})
    title = f"{record.action} {record.target}: {record.outcome}"
    return Notification(new_id(), kind, title, severity, record.ts, details=details, channels=channels)
