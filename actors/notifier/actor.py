"""The notifier actor: per-channel queues drained by background tasks, with retries and channel health.

Each channel has its own bounded queue and its own delivery task, so a slow or dead endpoint delays only
that channel. A delivery is retried with exponential backoff (``Retry-After`` honoured) until it succeeds,
fails permanently or runs out of attempts. A channel that answers "gone" (Slack 404/410, webhook 410) is
disabled until `EnableChannel`. Queues live in the incarnation: a crash loses what was still queued
(notifications are best-effort; the alert itself is durable in the event log).
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import assert_never

import httpx
import trio

from runtime import Actor, Reply

from .delivery import AttemptResult, Outcome
from .messages import (
    ChannelStatus,
    EnableChannel,
    Flush,
    ListChannels,
    Notification,
    NotifierMsg,
    Notify,
    UnknownChannel,
)
from .settings import Channel, EmailChannel, NotifierSettings, SlackChannel
from .transport import Transport, new_http_client

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Channel:
    config: Channel
    queue: deque[Notification] = field(default_factory=deque)
    wakeup: trio.Event = field(default_factory=trio.Event)
    enabled: bool = True
    disabled_reason: str | None = None
    in_flight: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: str | None = None
    last_success_at: float | None = None

    @property
    def busy(self) -> bool:
        return self.in_flight > 0 or (self.enabled and bool(self.queue))

    def status(self) -> ChannelStatus:
        kind = {SlackChannel: "slack", EmailChannel: "email"}.get(type(self.config), "webhook")
        return ChannelStatus(
            name=self.config.name,
            kind=kind,
            enabled=self.enabled,
            disabled_reason=self.disabled_reason,
            queued=len(self.queue),
            in_flight=self.in_flight,
            delivered=self.delivered,
            failed=self.failed,
            dropped=self.dropped,
            last_error=self.last_error,
            last_success_at=self.last_success_at,
        )


class NotifierActor(Actor[NotifierMsg]):
    """Delivers `Notification`s to configured channels (see module doc)."""

    def __init__(
        self,
        settings: NotifierSettings,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._rng = rng or random.Random()
        self._channels = {c.name: _Channel(c) for c in settings.channels}
        self._flush_waiters: list[Reply[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._transport: Transport | None = None

    async def on_start(self) -> None:
        """Open the HTTP client and start one delivery task per channel."""
        self._client = new_http_client(self._settings)
        self._transport = Transport(self._settings, self._client, self._clock)
        for channel in self._channels.values():
            self.spawn(self._drain, channel)

    async def on_stop(self) -> None:
        """Close the HTTP client; whatever is still queued is dropped."""
        if self._client is not None:
            with trio.CancelScope(shield=True):
                await self._client.aclose()

    async def handle(self, message: NotifierMsg) -> None:
        """One message at a time; deliveries themselves run in the channel tasks."""
        match message:
            case Notify(notification=n):
                self._enqueue(n)
            case ListChannels(reply=reply):
                reply.send(tuple(c.status() for c in self._channels.values()))
            case EnableChannel(name=name, reply=reply):
                channel = self._channel(name)
                channel.enabled, channel.disabled_reason = True, None
                channel.wakeup.set()
                reply.send(channel.status())
            case Flush(reply=reply):
                self._flush_waiters.append(reply)
                self._answer_flushes()
            case _:
                assert_never(message)

    def _channel(self, name: str) -> _Channel:
        channel = self._channels.get(name)
        if channel is None:
            raise UnknownChannel(f"no notification channel named {name!r}")
        return channel

    def _enqueue(self, n: Notification) -> None:
        for channel in self._channels.values():
            cfg = channel.config
            if n.channels is not None and cfg.name not in n.channels:
                continue
            if n.severity.rank < cfg.min_severity.rank:
                continue
            if len(channel.queue) >= self._settings.queue_capacity:
                channel.queue.popleft()
                channel.dropped += 1
            channel.queue.append(n)
            channel.wakeup.set()

    async def _drain(self, channel: _Channel) -> None:
        while True:
            if not (channel.enabled and channel.queue):
                channel.wakeup = trio.Event()
                await channel.wakeup.wait()
                continue
            n = channel.queue.popleft()
            channel.in_flight += 1
            try:
                await self._deliver(channel, n)
            finally:
                channel.in_flight -= 1
            self._answer_flushes()

    async def _deliver(self, channel: _Channel, n: Notification) -> None:
        retry = self._settings.retry
        for attempt in range(1, retry.max_attempts + 1):
            result = await self._attempt(channel, n)
            if result.outcome is Outcome.DELIVERED:
                channel.delivered += 1
                channel.last_success_at = self._clock()
                return
            channel.last_error = result.reason
            log.warning(
                "notification %s on channel %s: attempt %d %s (%s)",
                n.id, channel.config.name, attempt, result.outcome.value, result.reason,
            )  # fmt: skip
            if result.outcome is Outcome.DISABLE:
                channel.enabled, channel.disabled_reason = False, result.reason
                channel.failed += 1
                return
            if result.outcome is Outcome.FAILED or attempt == retry.max_attempts:
                break
            await trio.sleep(self._retry_delay(attempt, result))
        channel.failed += 1

    async def _attempt(self, channel: _Channel, n: Notification) -> AttemptResult:
        assert self._transport is not None
        with trio.move_on_after(self._settings.attempt_timeout_s):
            return await self._transport.attempt(channel.config, n)
        return AttemptResult(Outcome.RETRY, "attempt timed out")

    def _retry_delay(self, attempt: int, result: AttemptResult) -> float:
        retry = self._settings.retry
        delay = retry.delay(attempt, self._rng.random())
        if result.retry_after is not None:
            delay = max(delay, result.retry_after)
        return min(delay, retry.max_delay_s)

    def _answer_flushes(self) -> None:
        if self._flush_waiters and not any(c.busy for c in self._channels.values()):
            waiters, self._flush_waiters = self._flush_waiters, []
            for reply in waiters:
                reply.send(None)
