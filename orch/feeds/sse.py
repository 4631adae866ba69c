"""`GET /sse/events`: the event feed as Server-Sent Events.

Each event is one frame (`id:` = seq, `event:` = type, `data:` = the event as JSON). A client resumes with
the standard `Last-Event-ID` header (or `?after=SEQ`): the feed replays from the store, then continues live
with no gap and no duplicate. When the client is behind, everything pending goes out as one body chunk.
Silence is broken by a comment line every `feeds.heartbeat` seconds. A client that falls more than
`feeds.buffer` events behind gets a final `lagged` frame and the stream ends; so does every stream when the
node begins a graceful shutdown (`shutdown` frame), and when the caller's token expires (`expired` frame:
reconnect with a fresh token). Final frames carry `id:` = the seq to resume after.
The comment `: live` marks the point where the replay has caught up (at once when there is no replay).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any

import trio
from quart import Response, request

from actors.storage import StoredEvent
from orch.feeds.feed import EventFeed, FeedEnded, FeedLagged
from orch.feeds.filters import EventFilter
from orch.feeds.hub import FeedHub
from orch.feeds.metrics import Transport
from orch.http.problems import ValidationFailed

__all__ = ["LIVE_COMMENT", "SSE_CONTENT_TYPE", "SseBody", "parse_after", "sse_filter", "sse_response"]

SSE_CONTENT_TYPE = "text/event-stream"
RETRY_MS = 1000  # the reconnect delay EventSource clients should use
MAX_SEQ = 2**63 - 1
_HEARTBEAT = b": heartbeat\n\n"
LIVE_COMMENT = ": live\n\n"


def parse_after(name: str, value: str | None) -> int | None:
    """A seq from a header or query value (None when absent); ValidationFailed naming `name` otherwise."""
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > MAX_SEQ:
        raise ValidationFailed(name, f"must be an event seq (an integer 0..{MAX_SEQ})")
    return int(text)


def _joined(name: str) -> str | None:
    values = request.args.getlist(name)
    return ",".join(values) if values else None


def sse_filter() -> tuple[EventFilter, int | None]:
    """The filter and resume point of the current request (`Last-Event-ID` wins over `?after=`)."""
    event_filter = EventFilter.parse(
        types=_joined("type"),
        topics=_joined("topic"),
        task_id=request.args.get("task_id"),
        core_id=request.args.get("core_id"),
    )
    after = parse_after("after", request.args.get("after"))
    last_event_id = request.headers.get("Last-Event-ID")
    if last_event_id is not None and last_event_id.strip():
        after = parse_after("Last-Event-ID", last_event_id)
    return event_filter, after


def control_frame(kind: str, last_seq: int, detail: str) -> bytes:
    """A final frame: `id:` lets the client resume after `last_seq` (delivered or filtered out)."""
    data = json.dumps({"last_seq": last_seq, "detail": detail})
    return f"id: {last_seq}\nevent: {kind}\ndata: {data}\n\n".encode()


class SseBody:
    """The streaming body (an async iterator of chunks) of one SSE response; owns its feed."""

    def __init__(self, hub: FeedHub, feed: EventFeed, *, expires_at: float = math.inf) -> None:
        self._hub = hub
        self._feed = feed
        self._heartbeat = hub.settings.heartbeat
        self._coalesce = hub.settings.coalesce
        # The stream ends when the caller's token expires (wall clock -> Trio clock, measured once).
        self._expires = (
            trio.current_time() + (expires_at - time.time()) if math.isfinite(expires_at) else math.inf
        )
        self._opened = False
        self._live_sent = False
        self._done = False

    def __aiter__(self) -> SseBody:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        if not self._opened:
            return self._open()
        expires = self._expires
        now = trio.current_time()
        if now >= expires:
            detail = "the token expired; reconnect with a fresh one"
            return self._final(control_frame("expired", self._feed.cursor, detail))
        batch: Sequence[StoredEvent] = ()
        with trio.move_on_at(min(now + self._heartbeat, expires)):
            try:
                batch = await self._feed.next_batch()
            except FeedLagged as exc:
                self._hub.metrics.lagged.labels(Transport.SSE).inc()
                return self._final(control_frame("lagged", exc.last_seq, "fell behind; reconnect to resume"))
            except FeedEnded as exc:
                return self._final(control_frame("shutdown", exc.last_seq, "the node is shutting down"))
        live = self._live_marker()
        if not batch:
            if expires != math.inf and trio.current_time() >= expires:
                return await self.__anext__()
            return live.encode() if live else _HEARTBEAT
        if self._coalesce and self._feed.live:
            batch = await self._coalesced(batch)
        self._hub.metrics.delivered_batch(Transport.SSE, len(batch))
        frame = self._hub.sse_frame
        return "".join([*[frame(event) for event in batch], live]).encode()

    def _open(self) -> bytes:
        self._opened = True
        self._hub.metrics.connections.labels(Transport.SSE).inc()
        # Hypercorn sends the headers with the first body chunk: open the stream at once. A stream
        # without a replay names its starting seq (an `id:` alone sets the client's Last-Event-ID).
        start = f"id: {self._feed.cursor}\n" if self._feed.live else ""
        return f"retry: {RETRY_MS}\n: stream open\n{start}\n{self._live_marker()}".encode()

    async def _coalesced(self, batch: Sequence[StoredEvent]) -> Sequence[StoredEvent]:
        """`batch` plus the live events that arrive until the hub's next flush tick (one write for all).

        Not cancel-safe, and need not be: only the end of the response cancels it, and a client that
        went away resumes from the last `id:` it received."""
        await self._hub.flush.wait()
        more = await self._feed.pending_live()
        return [*batch, *more] if more else batch

    def _live_marker(self) -> str:
        """`: live` once, after the last replayed event: the client has caught up."""
        if self._live_sent or not self._feed.live:
            return ""
        self._live_sent = True
        return LIVE_COMMENT

    def _final(self, chunk: bytes) -> bytes:
        self._done = True
        self._feed.close()
        return chunk

    async def aclose(self) -> None:
        """Called by Quart when the response ends or the client goes away."""
        self._done = True
        self._feed.close()
        if self._opened:
            self._opened = False
            self._hub.metrics.connections.labels(Transport.SSE).dec()
            self._hub.sweeper.connection_closed()


def sse_response(hub: FeedHub, feed: EventFeed, *, expires_at: float = math.inf) -> Response:
    """The streaming response for `feed` (no Quart response timeout: a stream lives as long as it needs,
    or until `expires_at`, the caller's token expiry in unix seconds)."""
    headers: dict[str, Any] = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    body = SseBody(hub, feed, expires_at=expires_at)
    response = Response(body, content_type=SSE_CONTENT_TYPE, headers=headers)
    response.timeout = None
    return response
