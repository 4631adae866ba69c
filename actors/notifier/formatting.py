"""Rendering notifications: Slack (``text`` + Block Kit), the generic webhook JSON, and email. Pure."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from .messages import AlertInfo, Notification, NotificationKind

MAX_LISTED_ALERTS = 10  # Slack allows 50 blocks; keep messages readable
_ICON = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}


def iso(ts: float) -> str:
    """RFC 3339 UTC timestamp."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def headline(n: Notification) -> str:
    """One-line summary, e.g. ``[FIRING:2] HighCpu`` or ``[RECOVERY] restart-actor dispatcher: ok``."""
    if n.kind is NotificationKind.ALERT:
        return f"[{n.status.upper()}:{len(n.alerts)}] {n.title}"
    return f"[{n.kind.value.upper()}] {n.title}"


def alert_line(alert: AlertInfo) -> str:
    """One alert as plain text."""
    state = "resolved" if alert.status == "resolved" else alert.severity.value
    return f"{alert.name} ({state}): {alert.summary}"


def slack_payload(n: Notification, public_url: str | None = None) -> dict[str, Any]:
    """Incoming-webhook payload: ``text`` is the notification fallback, ``blocks`` the rich message."""
    icon = ":white_check_mark:" if n.status == "resolved" else _ICON.get(n.severity.value, "")
    text = f"{icon} {headline(n)}".strip()
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline(n)[:150], "emoji": True}},
    ]
    lines = [f"• {_escape(alert_line(a))}" for a in n.alerts[:MAX_LISTED_ALERTS]]
    if len(n.alerts) > MAX_LISTED_ALERTS:
        lines.append(f"… and {len(n.alerts) - MAX_LISTED_ALERTS} more")
    lines += [f"*{_escape(k)}*: {_escape(str(v))}" for k, v in n.details.items()]
    if lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}})
    context = f"severity *{n.severity.value}* · {iso(n.created_at)}"
    if public_url:
        context += f" · <{public_url}|orch>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": text, "blocks": blocks}


def webhook_payload(n: Notification) -> dict[str, Any]:
    """The Standard Webhooks-style envelope: ``type``, ``timestamp`` and ``data``."""
    return {
        "type": event_type(n),
        "timestamp": iso(n.created_at),
        "data": {
            "id": n.id,
            "title": n.title,
            "severity": n.severity.value,
            "status": n.status,
            "group_key": n.group_key,
            "alerts": [_alert_dict(a) for a in n.alerts],
            "details": dict(n.details),
        },
    }


def event_type(n: Notification) -> str:
    """The webhook ``type``: ``orch.alert.firing`` / ``orch.alert.resolved``, or ``orch.<kind>``."""
    if n.kind is NotificationKind.ALERT:
        return f"orch.alert.{n.status}"
    return f"orch.{n.kind.value}"


def webhook_body(n: Notification) -> bytes:
    """The exact bytes that are signed and sent."""
    return json.dumps(webhook_payload(n), separators=(",", ":"), sort_keys=True).encode()


def email_message(n: Notification, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    """A plain-text email for ``n``."""
    msg = EmailMessage()
    msg["Subject"] = f"orch {headline(n)}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Message-ID"] = f"<{n.id}@orch>"
    body = [headline(n), "", f"severity: {n.severity.value}", f"time: {iso(n.created_at)}", ""]
    for alert in n.alerts:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
        body += [f"- {alert_line(alert)}", f"  since {iso(alert.starts_at)}; {labels}"]
    body += [f"{k}: {v}" for k, v in n.details.items()]
    msg.set_content("\n".join(body) + "\n")
    return msg


def _alert_dict(a: AlertInfo) -> dict[str, Any]:
    return {
        "fingerprint": a.fingerprint,
        "name": a.name,
        "status": a.status,
        "severity": a.severity.value,
        "summary": a.summary,
        "labels": dict(a.labels),
        "value": a.value,
        "starts_at": iso(a.starts_at),
        "ends_at": None if a.ends_at is None else iso(a.ends_at),
    }


def _escape(text: str) -> str:
    # Slack mrkdwn control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
