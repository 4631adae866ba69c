"""`WS /ws/events`: the event feed over a websocket, with many subscriptions per connection.

    -> {"op": "subscribe", "id": "s1", "types": ["task."], "task_id": "...", "after": 120}
    <- {"op": "subscribed", "id": "s1", "after": 120}
    <- {"op": "events", "id": "s1", "last_seq": 131, "events": [{...}, ...]}   (coalesced when behind)
    <- {"op": "live", "id": "s1", "last_seq": 131}       (once: the replay has caught up)
    -> {"op": "unsubscribe", "id": "s1"}
    <- {"op": "unsubscribed", "id": "s1", "last_seq": 131}

A subscription that falls more than `feeds.buffer` events behind ends with `{"op": "lagged", "id",
"last_seq"}` (the socket stays open): subscribe again with `after` = that seq to resume with no gap and no
duplicate. On a graceful shutdown every subscription ends (`ended`), then `{"op": "shutdown"}` and close 1001.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import trio
from quart import Response, websocket

from actors.security.messages import Action, Principal
from orch.feeds.feed import EventFeed, FeedEnded, FeedLagged
from orch.feeds.filters import EventFilter
from orch.feeds.hub import FeedHub
from orch.feeds.metrics import Transport
from orch.feeds.ws_common import (
    CLOSE_GOING_AWAY,
    Close,
    Denied,
    SocketWriter,
    accept_socket,
    close_at_expiry,
    first_message_auth,
    json_fields,
    parse_message,
    principal_summary,
    ws_error_message,
)
from orch.http.app import current_node
from orch.http.body import JsonObject
from orch.http.problems import ApiError, Conflict, ShuttingDown, ValidationFailed

__all__ = ["MAX_SUBSCRIPTIONS", "serve_events_socket"]

MAX_SUBSCRIPTIONS = 16
_ID_PATTERN = r"[A-Za-z0-9_.:-]{1,64}"
_OPS = ("auth", "subscribe", "unsubscribe", "ping")


@dataclass(eq=False)
class _Subscription:
    id: str
    feed: EventFeed
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    resume_after: int = 0  # every event up to here was queued for the client (or filtered out)
    unsubscribed: bool = False


async def serve_events_socket(hub: FeedHub) -> Response | None:
    """The handler of `WS /ws/events` (returns a problem response when the handshake is refused)."""
    principal = await accept_socket(Action.EVENT_STREAM)
    if isinstance(principal, Denied):
        return principal.response
    await _EventsConnection(hub, principal).run()
    return None


class _EventsConnection:
    def __init__(self, hub: FeedHub, principal: Principal | None) -> None:
        self.hub = hub
        self.principal = principal
        self.out = SocketWriter(heartbeat=hub.settings.heartbeat)
        self.subs: dict[str, _Subscription] = {}
        self._counter = 0
        self._nursery: trio.Nursery | None = None
        self._no_subs = trio.Event()
        self._no_subs.set()

    async def run(self) -> None:
        gauge = self.hub.metrics.connections.labels(Transport.WS_EVENTS)
        gauge.inc()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._write_then_stop, nursery)
                nursery.start_soon(self._shutdown_watch)
                await self._read_loop()
        finally:
            gauge.dec()
            for sub in self.subs.values():
                sub.feed.close()
            self.hub.sweeper.connection_closed()

    async def _write_then_stop(self, nursery: trio.Nursery) -> None:
        await self.out.run()
        nursery.cancel_scope.cancel()  # the socket is closed: stop reading and pumping

    async def _shutdown_watch(self) -> None:
        await current_node().shutdown_requested.wait()
        # The hub closes on the same signal: let the pumps queue their final `ended` messages first.
        with trio.move_on_after(1.0):
            await self._no_subs.wait()
        await self.out.send(json_fields(op="shutdown", detail="the node is shutting down"))
        await self.out.send(Close(CLOSE_GOING_AWAY, "node shutting down"))

    async def _read_loop(self) -> None:
        principal = self.principal
        if principal is None:
            principal = self.principal = await first_message_auth(Action.EVENT_STREAM, self.out)
            if principal is None:
                await trio.sleep_forever()  # the writer closes the socket and cancels us
            await self.out.send(json_fields(op="authenticated", **principal_summary(principal)))
        assert self._nursery is not None
        self._nursery.start_soon(close_at_expiry, principal, self.out)
        while True:
            raw = await websocket.receive()
            try:
                await self._handle(parse_message(raw))
            except ApiError as exc:
                await self.out.send(ws_error_message(exc))

    async def _handle(self, message: JsonObject) -> None:
        op = message.req_str("op", max_len=32, choices=_OPS)
        if op == "subscribe":
            await self._subscribe(message)
        elif op == "unsubscribe":
            sub_id = message.req_str("id", pattern=_ID_PATTERN)
            message.reject_unknown()
            await self._unsubscribe(sub_id)
        elif op == "ping":
            await self.out.send(json_fields(op="pong"))
        else:
            raise Conflict("Already authenticated.")

    async def _subscribe(self, message: JsonObject) -> None:
        sub_id = message.opt_str("id", pattern=_ID_PATTERN)
        event_filter = EventFilter.parse(
            types=_str_list(message, "types"),
            topics=_str_list(message, "topics"),
            task_id=message.opt_str("task_id", min_len=1, max_len=256),
            core_id=message.opt_str("core_id", min_len=1, max_len=256),
        )
        after = message.opt_int("after", min=0, max=2**63 - 1)
        message.reject_unknown()
        if sub_id is None:
            self._counter += 1
            sub_id = str(self._counter)
        if sub_id in self.subs:
            raise Conflict(f"Subscription {sub_id!r} exists; unsubscribe first or pick another id.")
        if len(self.subs) >= MAX_SUBSCRIPTIONS:
            raise Conflict(f"At most {MAX_SUBSCRIPTIONS} subscriptions per connection.")
        try:
            feed = self.hub.open_feed(event_filter, after=after)
        except FeedEnded:
            raise ShuttingDown() from None
        sub = _Subscription(sub_id, feed, resume_after=feed.cursor)
        self.subs[sub_id] = sub
        if self._no_subs.is_set():
            self._no_subs = trio.Event()
        # Queued before the pump starts, so `subscribed` always precedes the subscription's events.
        subscribed = json_fields(op="subscribed", id=sub_id, after=feed.cursor, **event_filter.to_query())
        await self.out.send(subscribed)
        assert self._nursery is not None
        self._nursery.start_soon(self._pump, sub)

    async def _unsubscribe(self, sub_id: str) -> None:
        sub = self.subs.get(sub_id)
        if sub is None:
            raise ValidationFailed("id", f"no subscription {sub_id!r}")
        sub.unsubscribed = True
        sub.scope.cancel()
        self._drop(sub)
        await self.out.send(json_fields(op="unsubscribed", id=sub_id, last_seq=sub.resume_after))

    def _drop(self, sub: _Subscription) -> None:
        sub.feed.close()
        if self.subs.get(sub.id) is sub:
            del self.subs[sub.id]
        if not self.subs:
            self._no_subs.set()

    async def _pump(self, sub: _Subscription) -> None:
        metrics, json_text = self.hub.metrics, self.hub.json_text
        coalesce = self.hub.settings.coalesce
        prefix = f'{{"op":"events","id":{json.dumps(sub.id)},"last_seq":'
        final: str | None = None
        live_sent = False
        with sub.scope:
            try:
                while True:
                    if not live_sent and sub.feed.live:
                        live_sent = True
                        await self.out.send(json_fields(op="live", id=sub.id, last_seq=sub.feed.cursor))
                    batch = await sub.feed.next_batch()
                    if batch and coalesce and sub.feed.live:  # see `feeds.coalesce`
                        await self.hub.flush.wait()
                        batch = [*batch, *await sub.feed.pending_live()]
                    cursor = sub.feed.cursor
                    if batch:
                        events = ",".join([json_text(event) for event in batch])
                        await self.out.send(f'{prefix}{cursor},"events":[{events}]}}')
                        metrics.delivered_batch(Transport.WS_EVENTS, len(batch))
                    sub.resume_after = cursor
            except FeedLagged as exc:
                metrics.lagged.labels(Transport.WS_EVENTS).inc()
                final = json_fields(op="lagged", id=sub.id, last_seq=exc.last_seq, detail=str(exc))
            except FeedEnded as exc:
                final = json_fields(op="ended", id=sub.id, last_seq=exc.last_seq, detail=str(exc))
        self._drop(sub)
        if final is not None and not sub.unsubscribed:
            await self.out.send(final)


def _str_list(message: JsonObject, key: str) -> list[str] | None:
    items: list[Any] | None = message.opt_list(key, max_items=32)
    if items is None:
        return None
    if not all(isinstance(item, str) for item in items):
        raise ValidationFailed(key, "must be an array of strings")
    return [item for item in items if isinstance(item, str)]
