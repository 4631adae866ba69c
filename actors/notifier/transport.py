"""One delivery attempt on one channel: HTTP via httpx (works under Trio), SMTP via smtplib in a thread.

Errors are reduced to an `AttemptResult` whose ``reason`` names the failure class only: exception messages
may quote URLs (which embed Slack tokens) or server banners, so they are never logged or stored.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from typing import assert_never

import httpx
import trio

from .delivery import AttemptResult, Outcome, classify_slack, classify_smtp_code, classify_webhook
from .formatting import email_message, slack_payload, webhook_body
from .messages import Notification
from .settings import Channel, EmailChannel, NotifierSettings, SlackChannel, SmtpSecurity, WebhookChannel
from .signing import WebhookSigner

USER_AGENT = "orch-notifier/1"


class Transport:
    """Performs single attempts; the caller bounds each with a cancel scope and decides about retries."""

    def __init__(
        self, settings: NotifierSettings, client: httpx.AsyncClient, clock: Callable[[], float]
    ) -> None:
        self._settings = settings
        self._client = client
        self._clock = clock
        self._smtp_limiter = trio.CapacityLimiter(2)
        self._signers = {
            c.name: WebhookSigner.from_secret(c.secret)
            for c in settings.channels
            if isinstance(c, WebhookChannel) and c.secret is not None
        }

    async def attempt(self, channel: Channel, n: Notification) -> AttemptResult:
        """Try once to deliver ``n`` on ``channel``."""
        try:
            match channel:
                case SlackChannel():
                    return await self._slack(channel, n)
                case WebhookChannel():
                    return await self._webhook(channel, n)
                case EmailChannel():
                    return await self._email(channel, n)
                case _:
                    assert_never(channel)
        except httpx.InvalidURL:
            return AttemptResult(Outcome.DISABLE, "invalid URL")
        except httpx.UnsupportedProtocol:
            return AttemptResult(Outcome.DISABLE, "unsupported URL scheme")
        except httpx.HTTPError as exc:  # connect/read/write errors, protocol errors, decoding errors
            return AttemptResult(Outcome.RETRY, f"http error: {type(exc).__name__}")

    async def _slack(self, channel: SlackChannel, n: Notification) -> AttemptResult:
        payload = slack_payload(n, self._settings.public_url)
        response = await self._client.post(channel.webhook_url, json=payload)
        return classify_slack(
            response.status_code, response.text, response.headers.get("retry-after"), self._clock()
        )

    async def _webhook(self, channel: WebhookChannel, n: Notification) -> AttemptResult:
        body = webhook_body(n)
        now = int(self._clock())
        # Id and timestamp go out even unsigned; retries keep the id (receivers dedupe on it) and are
        # re-signed with the send time.
        headers = {"content-type": "application/json", "webhook-id": n.id, "webhook-timestamp": str(now)}
        signer = self._signers.get(channel.name)
        if signer is not None:
            headers.update(signer.headers(n.id, now, body))
        response = await self._client.post(channel.url, content=body, headers=headers)
        return classify_webhook(response.status_code, response.headers.get("retry-after"), self._clock())

    async def _email(self, channel: EmailChannel, n: Notification) -> AttemptResult:
        message = email_message(n, channel.sender, channel.recipients)
        timeout = self._settings.attempt_timeout_s
        # abandon_on_cancel: a cancelled attempt must not wait for the thread; the socket timeout ends it.
        return await trio.to_thread.run_sync(
            _send_email, channel, message, timeout, limiter=self._smtp_limiter, abandon_on_cancel=True
        )


class _RedactUrls(logging.Filter):
    """httpx logs every request URL at INFO; webhook URLs are credentials, so keep only scheme and host."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact(a) for a in record.args)
        return True


def _redact(arg: object) -> object:
    if isinstance(arg, httpx.URL):
        return f"{arg.scheme}://{arg.host}/<redacted>"
    return arg


def install_log_redaction() -> None:
    """Make httpx's own request log lines safe (idempotent)."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactUrls) for f in logger.filters):
        logger.addFilter(_RedactUrls())


def new_http_client(settings: NotifierSettings) -> httpx.AsyncClient:
    """An httpx client for the notifier: no redirects (a redirect could leak the body elsewhere)."""
    install_log_redaction()
    timeout = httpx.Timeout(settings.attempt_timeout_s)
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, headers={"user-agent": USER_AGENT})


def _send_email(channel: EmailChannel, message: EmailMessage, timeout: float) -> AttemptResult:
    try:
        with _connect(channel, timeout) as smtp:
            if channel.security is SmtpSecurity.STARTTLS:
                smtp.starttls(context=ssl.create_default_context())
            if channel.username is not None:
                smtp.login(channel.username, channel.password or "")
            refused = smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        return classify_smtp_code(min(codes, default=550), "recipients refused")
    except smtplib.SMTPResponseException as exc:
        return classify_smtp_code(exc.smtp_code, type(exc).__name__)
    except (smtplib.SMTPException, OSError) as exc:
        return AttemptResult(Outcome.RETRY, f"smtp error: {type(exc).__name__}")
    if refused:
        return AttemptResult(Outcome.DELIVERED, f"delivered; {len(refused)} recipient(s) refused")
    return AttemptResult(Outcome.DELIVERED, "250 accepted")


def _connect(channel: EmailChannel, timeout: float) -> smtplib.SMTP:
    if channel.security is SmtpSecurity.SSL:
        return smtplib.SMTP_SSL(
            channel.host, channel.port, timeout=timeout, context=ssl.create_default_context()
        )
    return smtplib.SMTP(channel.host, channel.port, timeout=timeout)
