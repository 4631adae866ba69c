"""The notifier actor against local HTTP and SMTP receivers: signing, Slack rules, retries, isolation."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable

import pytest
import trio
import trio.testing

from actors.notifier.actor import NotifierActor
from actors.notifier.messages import (
    ChannelStatus,
    EnableChannel,
    Flush,
    ListChannels,
    Notification,
    NotificationKind,
    NotifierMsg,
    Notify,
    Severity,
    UnknownChannel,
)
from actors.notifier.settings import (
    Channel,
    EmailChannel,
    NotifierSettings,
    RetryPolicy,
    SlackChannel,
    SmtpSecurity,
    WebhookChannel,
)
from runtime import ActorRef, open_actor

from .receivers import Scripted, http_receiver, smtp_receiver
from .verify import verify

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
BASE = 1_800_000_000.0


def _clock() -> float:
    return BASE + trio.current_time()


def _note(
    n: int = 1, severity: Severity = Severity.CRITICAL, channels: tuple[str, ...] | None = None
) -> Notification:
    return Notification(
        f"msg_{n}", NotificationKind.ALERT, f"Alert{n}", severity, _clock(), channels=channels
    )


def _settings(*channels: Channel, attempts: int = 4) -> NotifierSettings:
    retry = RetryPolicy(max_attempts=attempts, initial_delay_s=1, max_delay_s=120, jitter=0)
    return NotifierSettings(channels=channels, retry=retry, attempt_timeout_s=30)


def _notifier(settings: NotifierSettings) -> Callable[[], NotifierActor]:
    return lambda: NotifierActor(settings, clock=_clock)


async def _status(ref: ActorRef[NotifierMsg], name: str) -> ChannelStatus:
    statuses = await ref.ask(lambda r: ListChannels(r))
    return next(s for s in statuses if s.name == name)


async def test_signed_webhook_reaches_receiver_and_verifies(io_clock: trio.testing.MockClock) -> None:
    async with http_receiver() as rx:
        settings = _settings(WebhookChannel("hook", rx.url("/orch"), secret=SECRET))
        async with open_actor(_notifier(settings)) as ref:
            await ref.tell(Notify(_note(7)))
            await ref.ask(lambda r: Flush(r))
        (request,) = rx.requests
    assert request.method == "POST" and request.path == "/orch"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == "msg_7"
    verify(request.headers, request.body, now=_clock(), secret=SECRET)
    assert json.loads(request.body)["data"]["title"] == "Alert7"


async def test_retried_webhook_keeps_its_id_and_is_re_signed(io_clock: trio.testing.MockClock) -> None:
    async with http_receiver() as rx:
        rx.script.extend([Scripted(503), Scripted(502)])
        settings = _settings(WebhookChannel("hook", rx.url(), secret=SECRET))
        async with open_actor(_notifier(settings)) as ref:
            await ref.tell(Notify(_note()))
            await ref.ask(lambda r: Flush(r))
            status = await _status(ref, "hook")
    assert [r.headers["webhook-id"] for r in rx.requests] == ["msg_1"] * 3
    for request in rx.requests:
        verify(request.headers, request.body, now=int(request.headers["webhook-timestamp"]), secret=SECRET)
    assert (status.delivered, status.failed, status.last_error) == (1, 0, "502")


async def test_slack_gets_text_and_blocks_and_only_200_ok_counts(io_clock: trio.testing.MockClock) -> None:
    async with http_receiver() as rx:
        rx.script.append(Scripted(200, b"not ok"))
        settings = _settings(SlackChannel("slack", rx.url("/services/T/B/XYZ")))
        async with open_actor(_notifier(settings)) as ref:
            await ref.tell(Notify(_note()))
            await ref.ask(lambda r: Flush(r))
            status = await _status(ref, "slack")
    assert len(rx.requests) == 2  # the "not ok" 200 was retried
    payload = json.loads(rx.requests[-1].body)
    assert "Alert1" in payload["text"] and payload["blocks"][0]["type"] == "header"
    assert status.delivered == 1


async def test_slack_404_disables_the_channel_until_enabled(io_clock: trio.testing.MockClock) -> None:
    async with http_receiver() as rx:
        rx.script.append(Scripted(404, b"no_service"))
        settings = _settings(SlackChannel("slack", rx.url()))
        async with open_actor(_notifier(settings)) as ref:
            await ref.tell(Notify(_note(1)))
            await ref.ask(lambda r: Flush(r))
            await ref.tell(Notify(_note(2)))
            await ref.ask(lambda r: Flush(r))
            disabled = await _status(ref, "slack")
            assert len(rx.requests) == 1
            enabled = await ref.ask(lambda r: EnableChannel("slack", r))
            await ref.ask(lambda r: Flush(r))
            with pytest.raises(UnknownChannel):
                await ref.ask(lambda r: EnableChannel("nope", r))
    assert not disabled.enabled and disabled.disabled_reason == "404 no_service" and disabled.queued == 1
    assert enabled.enabled
    assert [json.loads(r.body)["text"].split()[-1] for r in rx.requests] == ["Alert1", "Alert2"]


async def test_slack_429_honours_retry_after(io_clock: trio.testing.MockClock) -> None:
    async with http_receiver() as rx:
        rx.script.append(Scripted(429, b"rate_limited", (("retry-after", "30"),)))
        arrivals: list[float] = []
        settings = _settings(SlackChannel("slack", rx.url()))
        async with open_actor(_notifier(settings)) as ref:
            await ref.tell(Notify(_note()))
            for count in (1, 2):
                await rx.wait_for(count)
                arrivals.append(trio.current_time())
            await ref.ask(lambda r: Flush(r))
    assert arrivals[1] - arrivals[0] >= 30


async def test_permanent_failure_is_not_retried_and_attempts_are_bounded(
    io_clock: trio.testing.MockClock,
) -> None:
    async with http_receiver() as bad, http_receiver() as down:
        bad.default = Scripted(400, b"bad")
        down.default = Scripted(500, b"down")
        settings = _settings(WebhookChannel("bad", bad.url()), WebhookChannel("down", down.url()), attempts=3)
        async with open_actor(_notifier(settings)) as ref:
            await ref.tell(Notify(_note()))
            await ref.ask(lambda r: Flush(r))
            statuses = await ref.ask(lambda r: ListChannels(r))
    assert (len(bad.requests), len(down.requests)) == (1, 3)
    assert [(s.delivered, s.failed) for s in statuses] == [(0, 1), (0, 1)]


async def test_slow_endpoint_delays_neither_the_sender_nor_other_channels(
    io_clock: trio.testing.MockClock,
) -> None:
    async with http_receiver() as slow, http_receiver() as fast:
        slow.default = Scripted(200, delay=10_000)
        settings = _settings(WebhookChannel("slow", slow.url()), WebhookChannel("fast", fast.url()))
        async with open_actor(_notifier(settings)) as ref:
            started = trio.current_time()
            for n in range(5):
                ref.tell_nowait(Notify(_note(n)))
            await fast.wait_for(5)
            assert trio.current_time() - started < 1
            assert len(slow.requests) == 1


async def test_routing_by_channel_name_and_minimum_severity(io_clock: trio.testing.MockClock) -> None:
    async with http_receiver() as a, http_receiver() as b:
        settings = _settings(
            WebhookChannel("a", a.url(), min_severity=Severity.CRITICAL), WebhookChannel("b", b.url())
        )
        async with open_actor(_notifier(settings)) as ref:
            await ref.tell(Notify(_note(1, Severity.WARNING)))  # b only: below a's minimum
            await ref.tell(Notify(_note(2, Severity.CRITICAL, channels=("a",))))  # a only: named
            await ref.ask(lambda r: Flush(r))
    assert [r.headers["webhook-id"] for r in a.requests] == ["msg_2"]
    assert [r.headers["webhook-id"] for r in b.requests] == ["msg_1"]


async def test_email_reaches_the_smtp_receiver(io_clock: trio.testing.MockClock) -> None:
    async with smtp_receiver() as rx:
        channel = EmailChannel(
            "mail", "127.0.0.1", "orch@example.com", ("ops@example.com",), port=rx.port,
            security=SmtpSecurity.NONE,
        )  # fmt: skip
        async with open_actor(_notifier(_settings(channel))) as ref:
            await ref.tell(Notify(_note(3)))
            await ref.ask(lambda r: Flush(r))
            status = await _status(ref, "mail")
    ((sender, rcpts, msg),) = rx.messages
    assert (sender, rcpts) == ("orch@example.com", ["ops@example.com"])
    assert msg["Subject"] == "orch [FIRING:0] Alert3"
    assert status.delivered == 1


@pytest.mark.parametrize(("code", "attempts"), [(450, 3), (550, 1)])
async def test_smtp_transient_errors_are_retried_and_permanent_ones_are_not(
    io_clock: trio.testing.MockClock, code: int, attempts: int
) -> None:
    async with smtp_receiver() as rx:
        rx.reject_rcpt_with = code
        channel = EmailChannel(
            "mail", "127.0.0.1", "orch@x", ("ops@x",), port=rx.port, security=SmtpSecurity.NONE
        )
        async with open_actor(_notifier(_settings(channel, attempts=3))) as ref:
            await ref.tell(Notify(_note()))
            await ref.ask(lambda r: Flush(r))
            status = await _status(ref, "mail")
    assert status.failed == 1 and status.last_error is not None and str(code) in status.last_error
    assert rx.connections == attempts
    assert rx.messages == []


async def test_urls_and_secrets_never_reach_the_logs(
    io_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with http_receiver() as rx:
        rx.default = Scripted(500, b"boom")
        settings = _settings(
            SlackChannel("slack", rx.url("/services/T0/B0/TOKENSLACK")),
            WebhookChannel("hook", rx.url("/hook?key=TOKENHOOK"), secret=SECRET),
            attempts=2,
        )
        async with open_actor(_notifier(settings)) as ref:
            await ref.tell(Notify(_note()))
            await ref.ask(lambda r: Flush(r))
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "notification msg_1 on channel slack" in text  # failures are logged...
    for secret in ("TOKENSLACK", "TOKENHOOK", SECRET):
        assert secret not in text  # ...without URLs or credentials


async def test_unreachable_endpoint_is_retried_and_a_bad_scheme_disables(
    io_clock: trio.testing.MockClock,
) -> None:
    with trio.socket.socket() as probe:  # a port nobody listens on
        await probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = _settings(
        WebhookChannel("refused", f"http://127.0.0.1:{closed_port}/x"),
        WebhookChannel("ftp", "ftp://127.0.0.1/x"),
        attempts=3,
    )
    async with open_actor(_notifier(settings)) as ref:
        await ref.tell(Notify(_note()))
        await ref.ask(lambda r: Flush(r))
        refused, ftp = await ref.ask(lambda r: ListChannels(r))
    assert (refused.failed, refused.enabled, refused.last_error) == (1, True, "http error: ConnectError")
    assert (ftp.enabled, ftp.disabled_reason) == (False, "unsupported URL scheme")
