"""Prometheus metrics of one node: its own CollectorRegistry, bounded labels, rendering off the Trio thread.

Rendering ~1,000 series takes ~55 ms with prometheus-client (DESIGN §7), so `render` runs
`generate_latest` in a worker thread, and concurrent scrapes share one render (single flight).
Label values are bounded by construction: route templates (never raw paths), a fixed method set, statuses.
"""

from __future__ import annotations

from collections.abc import Callable

import trio
from prometheus_client import CONTENT_TYPE_LATEST as _CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "UNMATCHED_ENDPOINT", "ActorMetrics", "HttpMetrics", "Metrics", "bounded_method"]

CONTENT_TYPE = _CONTENT_TYPE
UNMATCHED_ENDPOINT = "<unmatched>"

# The `_created` series double the output for nothing an operator uses (DESIGN §7).
disable_created_metrics()  # type: ignore[no-untyped-call]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def bounded_method(method: str) -> str:
    """The method as a label value; anything exotic collapses to OTHER so labels stay bounded."""
    upper = method.upper()
    return upper if upper in _METHODS else "OTHER"


class HttpMetrics:
    """Request count, duration and in-flight gauge, labelled by route template."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "orch_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "endpoint", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "orch_http_request_duration_seconds",
            "Time from request start to the last response byte handed to the server.",
            ["method", "endpoint"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "orch_http_requests_in_flight", "HTTP requests being handled now.", registry=registry
        )
        # Read at scrape time: no gauge lock taken twice per request.
        self.in_flight.set_function(lambda: self.in_flight_now)
        self.total = 0  # requests answered since start (for /health totals)
        self.in_flight_now = 0
        # Labelled children by (method, route, status), bounded like the labels: `labels()` is a locked
        # lookup plus validation, twice per request otherwise.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        label = bounded_method(method)
        key = (label, endpoint, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(label, endpoint, str(status)),
                self.duration.labels(label, endpoint),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        self.total += 1


class ActorMetrics:
    """Supervision metrics, labelled by child id (a fixed set: the tree's specs)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.crashes = Counter("orch_actor_crashes", "Actor crashes.", ["actor"], registry=registry)
        self.restarts = Counter(
            "orch_actor_restarts", "Actor restarts.", ["actor", "reason"], registry=registry
        )
        self.mailbox_depth = Gauge(
            "orch_actor_mailbox_depth", "Messages waiting in the mailbox.", ["actor"], registry=registry
        )
        self.mailbox_capacity = Gauge(
            "orch_actor_mailbox_capacity", "Mailbox capacity.", ["actor"], registry=registry
        )
        self.messages_handled = Gauge(
            "orch_actor_messages_handled",
            "Messages handled by the current incarnation.",
            ["actor"],
            registry=registry,
        )


class Metrics:
    """The node's registry and its metric families; actors' gauges are added beside `http`."""

    def __init__(self, *, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http = HttpMetrics(self.registry)
        self.actors = ActorMetrics(self.registry)
        if process_metrics:
            ProcessCollector(registry=self.registry)
        self._refreshers: list[Callable[[], None]] = []
        self._inflight: trio.Event | None = None
        self._last: bytes = b""
        self.renders = 0

    def add_refresh(self, refresh: Callable[[], None]) -> None:
        """Run `refresh` on the Trio thread before each render (copy actor/db state into gauges)."""
        self._refreshers.append(refresh)

    async def render(self) -> bytes:
        """The exposition text. Never blocks the Trio thread; scrapes arriving mid-render share it."""
        pending = self._inflight
        if pending is not None:
            await pending.wait()
            return self._last
        done = self._inflight = trio.Event()
        try:
            for refresh in self._refreshers:
                refresh()
            # Not abandonable: the thread finishes even if this scrape is cancelled, so waiters wake.
            self._last = await trio.to_thread.run_sync(generate_latest, self.registry)
            self.renders += 1
            return self._last
        finally:
            self._inflight = None
            done.set()
