"""Pure notifier parts: signing, payload formatting, response classification, settings hygiene."""

from __future__ import annotations

import base64
import json

import nacl.signing
import pytest

from actors.notifier.delivery import Outcome, classify_slack, classify_webhook, parse_retry_after
from actors.notifier.formatting import email_message, slack_payload, webhook_body
from actors.notifier.messages import AlertInfo, Notification, NotificationKind, Severity
from actors.notifier.settings import EmailChannel, RetryPolicy, SlackChannel, WebhookChannel
from actors.notifier.signing import SigningKeyError, WebhookSigner

from .verify import VerificationFailed, verify

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
NOW = 1_800_000_000


def _alert(name: str = "HighCpu", status: str = "firing") -> AlertInfo:
    return AlertInfo("fp1", name, status, Severity.CRITICAL, "CPU <at> 97%", {"host": "a"}, 97.0, NOW - 300)


def _notification(*alerts: AlertInfo, status: str = "firing") -> Notification:
    return Notification(
        "msg_1", NotificationKind.ALERT, "HighCpu", Severity.CRITICAL, NOW, status, alerts or (_alert(),)
    )


def test_hmac_signature_verifies_with_an_independent_implementation() -> None:
    body = b'{"hello":"world"}'
    headers = WebhookSigner.from_secret(SECRET).headers("msg_1", NOW, body)
    verify(headers, body, now=NOW, secret=SECRET)
    with pytest.raises(VerificationFailed):
        verify(headers, body + b" ", now=NOW, secret=SECRET)
    with pytest.raises(VerificationFailed):
        verify(headers, body, now=NOW + 301, secret=SECRET)


def test_ed25519_signature_verifies_with_the_public_key() -> None:
    key = nacl.signing.SigningKey.generate()
    secret = "whsk_" + base64.b64encode(bytes(key)).decode()
    public = "whpk_" + base64.b64encode(bytes(key.verify_key)).decode()
    signer = WebhookSigner.from_secret(secret)
    assert signer.public_key() == public
    body = b'{"a":1}'
    headers = signer.headers("msg_2", NOW, body)
    assert headers["webhook-signature"].startswith("v1a,")
    verify(headers, body, now=NOW, public_key=public)
    with pytest.raises(VerificationFailed):
        verify(headers, b'{"a":2}', now=NOW, public_key=public)


@pytest.mark.parametrize("secret", ["nope", "whsec_!!!", "whsec_" + base64.b64encode(b"short").decode()])
def test_bad_secrets_are_refused_without_echoing_them(secret: str) -> None:
    with pytest.raises(SigningKeyError) as info:
        WebhookSigner.from_secret(secret)
    assert secret not in str(info.value)


def test_secrets_are_not_in_settings_repr() -> None:
    channels = [
        SlackChannel("s", "https://hooks.slack.com/services/T0/B0/SECRETTOKEN"),
        WebhookChannel("w", "https://example.com/hook?token=SECRETTOKEN", secret=SECRET),
        EmailChannel("e", "smtp.example.com", "orch@x", ("ops@x",), password="SECRETTOKEN"),
    ]
    for channel in channels:
        assert "SECRETTOKEN" not in repr(channel)
    assert SECRET not in repr(channels[1])


def test_slack_payload_has_fallback_text_and_blocks() -> None:
    payload = slack_payload(_notification(), public_url="https://orch.example")
    assert payload["text"].endswith("[FIRING:1] HighCpu")
    kinds = [b["type"] for b in payload["blocks"]]
    assert kinds == ["header", "section", "context"]
    section = payload["blocks"][1]["text"]["text"]
    assert "CPU &lt;at&gt; 97%" in section  # mrkdwn control characters escaped
    assert "<https://orch.example|orch>" in payload["blocks"][2]["elements"][0]["text"]


def test_slack_payload_truncates_long_alert_lists() -> None:
    alerts = tuple(_alert(f"A{i}") for i in range(25))
    section = slack_payload(_notification(*alerts))["blocks"][1]["text"]["text"]
    assert section.count("•") == 10 and "and 15 more" in section


def test_webhook_body_is_compact_json_with_type_and_data() -> None:
    doc = json.loads(webhook_body(_notification(status="resolved")))
    assert doc["type"] == "orch.alert.resolved"
    assert doc["timestamp"] == "2027-01-15T08:00:00Z"
    assert doc["data"]["alerts"][0]["labels"] == {"host": "a"}


def test_email_message_names_the_alerts() -> None:
    msg = email_message(_notification(), "orch@example.com", ("ops@example.com", "dev@example.com"))
    assert msg["Subject"] == "orch [FIRING:1] HighCpu"
    assert msg["To"] == "ops@example.com, dev@example.com"
    assert "HighCpu (critical): CPU <at> 97%" in msg.get_content()


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (200, "ok", Outcome.DELIVERED),
        (200, "something else", Outcome.RETRY),
        (404, "no_service", Outcome.DISABLE),
        (410, "channel_is_archived", Outcome.DISABLE),
        (429, "rate_limited", Outcome.RETRY),
        (400, "invalid_payload", Outcome.FAILED),
        (403, "action_prohibited", Outcome.FAILED),
        (500, "rollup_error", Outcome.RETRY),
    ],
)
def test_slack_only_200_ok_is_success(status: int, body: str, outcome: Outcome) -> None:
    assert classify_slack(status, body, None, NOW).outcome is outcome


def test_webhook_classification_follows_standard_webhooks_conventions() -> None:
    assert classify_webhook(204, None, NOW).outcome is Outcome.DELIVERED
    assert classify_webhook(410, None, NOW).outcome is Outcome.DISABLE
    assert classify_webhook(400, None, NOW).outcome is Outcome.FAILED
    retry = classify_webhook(503, "7", NOW)
    assert retry.outcome is Outcome.RETRY and retry.retry_after == 7


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after("Fri, 15 Jan 2027 08:01:00 GMT", NOW) == 60
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


def test_retry_delays_double_and_cap() -> None:
    policy = RetryPolicy(initial_delay_s=1, max_delay_s=10, jitter=0)
    assert [policy.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    jittery = RetryPolicy(initial_delay_s=10, jitter=0.1)
    assert 9 <= jittery.delay(1, 0.0) < jittery.delay(1, 0.999) <= 11
