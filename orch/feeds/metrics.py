"""Feed metrics on the node's registry: open connections, events delivered, lagged cut-offs, by transport."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge

from runtime import BroadcastStats

__all__ = ["FeedMetrics", "Transport"]


class Transport(StrEnum):
    """The feed endpoints (a fixed label set)."""

    SSE = "sse"
    WS_EVENTS = "ws_events"
    WS_DISPATCH = "ws_dispatch"


class FeedMetrics:
    """Counters and gauges of the live feeds, labelled by `Transport`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.connections = Gauge(
            "orch_feed_connections", "Open SSE and websocket connections.", ["transport"], registry=registry
        )
        self.delivered = Counter(
            "orch_feed_events_delivered",
            "Events handed to SSE/websocket clients (replayed and live).",
            ["transport"],
            registry=registry,
        )
        self.writes = Counter(
            "orch_feed_writes",
            "Body chunks / messages written to feed clients; fewer than events when writes coalesce.",
            ["transport"],
            registry=registry,
        )
        self.lagged = Counter(
            "orch_feed_lagged_disconnects",
            "Feed subscribers cut off for falling behind (they resume from the event store).",
            ["transport"],
            registry=registry,
        )
        self.published = Gauge(
            "orch_feed_broadcast_published", "Events published on the node's Broadcast.", registry=registry
        )
        self.subscribers = Gauge(
            "orch_feed_broadcast_subscribers", "Live Broadcast subscriptions.", registry=registry
        )
        # Every series exists from the start (rate() needs a zero); children are cached for the hot path.
        self._delivered = {t: self.delivered.labels(t) for t in Transport}
        self._writes = {t: self.writes.labels(t) for t in Transport}
        for transport in Transport:
            self.connections.labels(transport)
            self.lagged.labels(transport)

    def refresher(self, stats: Callable[[], BroadcastStats]) -> Callable[[], None]:
        """A metrics refresh hook copying the Broadcast's counters into gauges."""

        def refresh() -> None:
            snapshot = stats()
            self.published.set(snapshot.published)
            self.subscribers.set(snapshot.subscribers)

        return refresh

    def delivered_batch(self, transport: Transport, events: int) -> None:
        """Record one write carrying `events` events."""
        self._delivered[transport].inc(events)
        self._writes[transport].inc()
