"""Monitor -> notifier -> a local HTTP receiver: once per episode, repeats, resolves, silences, grouping."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from actors.monitor.messages import GetStatus, SampleNow, Silence
from actors.monitor.settings import AlertRule, MonitorSettings, Op, Threshold
from actors.notifier.actor import NotifierActor
from actors.notifier.messages import Flush, NotifierMsg, Severity
from actors.notifier.settings import NotifierSettings, RetryPolicy, WebhookChannel
from runtime import ActorRef, open_actor

from ..notifier.receivers import HttpReceiver, Scripted, http_receiver
from ..notifier.verify import verify
from .conftest import EPOCH, Rig, RigFactory

SECRET = "whsec_" + base64.b64encode(b"m" * 24).decode()
DOWN = AlertRule("Down", "up", Threshold(Op.LT, 1), severity=Severity.CRITICAL, summary="{instance} is down")


@asynccontextmanager
async def _notifier(rx: HttpReceiver) -> AsyncIterator[ActorRef[NotifierMsg]]:
    settings = NotifierSettings(
        channels=(WebhookChannel("hook", rx.url(), secret=SECRET),), retry=RetryPolicy(max_attempts=1)
    )
    async with open_actor(lambda: NotifierActor(settings), name="notifier") as ref:
        yield ref


def _bodies(rx: HttpReceiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in rx.requests]


async def _round(r: Rig, notifier: ActorRef[NotifierMsg], t: float, **values: float) -> None:
    await r.round_at(t, **values)
    await notifier.ask(lambda x: Flush(x))


async def test_alert_is_notified_once_repeated_after_interval_and_resolved_once(rig: RigFactory) -> None:
    settings = MonitorSettings(interval_s=100_000, rules=(DOWN,), policies=(), repeat_interval_s=600)
    async with http_receiver() as rx, _notifier(rx) as notifier, rig(settings, notifier) as r:
        for t in range(0, 1300, 10):
            await _round(r, notifier, t, up=0.0)
        await _round(r, notifier, 1300, up=1.0)
        await _round(r, notifier, 1310, up=1.0)
    bodies = _bodies(rx)
    assert [b["type"] for b in bodies] == ["orch.alert.firing"] * 3 + ["orch.alert.resolved"]
    assert [b["timestamp"] for b in bodies[:3]] == [
        "2027-01-15T08:00:00Z", "2027-01-15T08:10:00Z", "2027-01-15T08:20:00Z",
    ]  # fmt: skip
    resolved = bodies[-1]["data"]["alerts"][0]
    assert resolved["status"] == "resolved" and resolved["ends_at"] == "2027-01-15T08:21:40Z"
    for request in rx.requests:
        verify(request.headers, request.body, now=int(request.headers["webhook-timestamp"]), secret=SECRET)


async def test_alerts_firing_together_are_grouped_into_one_notification(rig: RigFactory) -> None:
    settings = MonitorSettings(interval_s=100_000, rules=(DOWN,), policies=())
    async with http_receiver() as rx, _notifier(rx) as notifier, rig(settings, notifier) as r:
        await r.round_at(0)
        r.samples.values = {'up{instance="a"}': 0.0, 'up{instance="b"}': 0.0}
        r.clock.now = EPOCH + 10
        await r.ref.ask(lambda x: SampleNow(x))
        await notifier.ask(lambda x: Flush(x))
    (body,) = _bodies(rx)
    assert [a["summary"] for a in body["data"]["alerts"]] == ["a is down", "b is down"]
    assert body["data"]["title"] == "Down" and body["data"]["severity"] == "critical"


async def test_silenced_alert_is_notified_when_the_silence_ends(rig: RigFactory) -> None:
    settings = MonitorSettings(interval_s=100_000, rules=(DOWN,), policies=())
    async with http_receiver() as rx, _notifier(rx) as notifier, rig(settings, notifier) as r:
        await r.ref.ask(lambda x: Silence({"alertname": "Down"}, 300, "ops", x))
        for t in range(0, 300, 10):
            await _round(r, notifier, t, up=0.0)
        assert rx.requests == []
        await _round(r, notifier, 300, up=0.0)
    assert [b["type"] for b in _bodies(rx)] == ["orch.alert.firing"]


async def test_slow_notification_endpoint_never_blocks_monitoring(rig: RigFactory) -> None:
    settings = MonitorSettings(interval_s=100_000, rules=(DOWN,), policies=(), repeat_interval_s=10)
    async with http_receiver() as rx, _notifier(rx) as notifier, rig(settings, notifier) as r:
        rx.default = Scripted(200, delay=3600)
        with trio.fail_after(10):  # real seconds: fifty rounds must not wait for the endpoint
            for t in range(0, 500, 10):
                await r.round_at(t, up=0.0)
        status = await r.ref.ask(lambda x: GetStatus(x))
        assert status.ticks == 50 and status.notifications_sent == 50
        assert len(rx.requests) == 1
