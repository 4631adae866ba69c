"""The node's event hub: every committed event goes onto one Broadcast, in seq order; feeds read from it.

`attach_feeds(node)` (called by `open_node`) creates the hub, adds it to `node.event_sinks` (the database
calls them after each commit with its events, in seq order), and closes it when a graceful shutdown
begins: every feed then ends with a final message and its stream closes, so the server's drain is not held
up by idle streams.

Encoding an event is done once per event, not once per subscriber: `sse_frame`/`json_text` cache the
encoded text of recent events (fan-out to many clients shares it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from actors.storage import Database, StoredEvent
from orch.config import FeedsConfig
from orch.feeds.feed import EventFeed
from orch.feeds.filters import EventFilter
from orch.feeds.flush import FlushClock
from orch.feeds.gc_tuning import GarbageSweeper
from orch.feeds.metrics import FeedMetrics
from orch.http.task_views import event_json
from runtime import Broadcast

if TYPE_CHECKING:
    from orch.node import Node

__all__ = ["FeedHub", "attach_feeds"]

_CACHE_SIZE = 8192
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


class FeedHub:
    """The Broadcast of committed events plus what feeds need: settings, store access, metrics, caches."""

    def __init__(self, settings: FeedsConfig, database: Callable[[], Database], metrics: FeedMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.broadcast: Broadcast[StoredEvent] = Broadcast(capacity=settings.buffer)
        self._database = database
        self._json: dict[int, str] = {}
        self.sweeper = GarbageSweeper(settings.gc_sweep_interval)
        self.flush = FlushClock(settings.coalesce)
        """The shared tick coalescing feeds wait for (`feeds.coalesce`)."""
        """Told of every closed feed connection; frees their cyclic garbage now and then."""
        self.last_seq = 0
        """The last seq published (primed from the store at start-up): where a live-only feed starts."""

    # -- the sink ----------------------------------------------------------------------------------------
    def publish_many(self, events: Sequence[StoredEvent]) -> None:
        """The node's event sink: publish each of a committed batch's events (seq order) under its type
        (a no-op once the hub is closed)."""
        broadcast = self.broadcast
        if broadcast.closed or not events:
            return
        publish = broadcast.publish
        for event in events:
            publish(event.type, event)
        self.last_seq = events[-1].seq

    @property
    def closed(self) -> bool:
        """True once the hub stopped publishing (graceful shutdown began)."""
        return self.broadcast.closed

    def close(self) -> None:
        """End every feed: each delivers what it holds, then ends (`FeedEnded`)."""
        self.broadcast.close()

    # -- feeds -------------------------------------------------------------------------------------------
    def open_feed(self, filter: EventFilter, *, after: int | None) -> EventFeed:
        """A feed of events matching `filter` after seq `after` (None: from now). Raises `FeedEnded` when
        the hub is closed. Close it (or use it as a context manager) when done."""
        return EventFeed(
            self.broadcast,
            self._database,
            filter,
            after=after,
            page=self.settings.replay_page,
            capacity=self.settings.buffer,
            live_from=self.last_seq,
        )

    async def prime(self) -> None:
        """Learn the last committed seq from the store (before the node serves)."""
        self.last_seq = max(self.last_seq, await self._database().last_seq())

    # -- shared encodings --------------------------------------------------------------------------------
    def json_text(self, event: StoredEvent) -> str:
        """The event as compact JSON (the shape of GET /jobs/{id}/events), encoded once per event."""
        text = self._json.get(event.seq)
        if text is None:
            text = _ENCODER.encode(event_json(event))
            cache = self._json
            if len(cache) >= _CACHE_SIZE:
                del cache[next(iter(cache))]  # oldest inserted
            cache[event.seq] = text
        return text

    def sse_frame(self, event: StoredEvent) -> str:
        """The SSE frame of `event`: `id:` is its seq, `event:` its type, `data:` its JSON."""
        # json.dumps never emits a raw newline, so one data line is always enough.
        return f"id: {event.seq}\nevent: {event.type}\ndata: {self.json_text(event)}\n\n"


def attach_feeds(node: Node) -> FeedHub:
    """Create the node's hub, make it an event sink, and close it when shutdown is requested.

    Call with `node.nursery` open (the shutdown watcher runs there).
    """
    metrics = FeedMetrics(node.metrics.registry)
    hub = FeedHub(node.config.feeds, node.database, metrics)
    node.event_sinks.append(hub.publish_many)
    node.on_started.append(lambda _: hub.prime())
    node.metrics.add_refresh(metrics.refresher(hub.broadcast.statistics))
    if node.nursery is not None:
        node.nursery.start_soon(_close_on_shutdown, node, hub)
        node.nursery.start_soon(hub.sweeper.run, lambda: hub.broadcast.statistics().subscribers)
        node.nursery.start_soon(hub.flush.run)
    return hub


async def _close_on_shutdown(node: Node, hub: FeedHub) -> None:
    await node.shutdown_requested.wait()
    hub.close()
