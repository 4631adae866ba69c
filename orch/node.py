"""The node: one process = one data dir = one database = one supervisor tree.

`open_node(config)` wires everything in start order and unwinds it in reverse on exit:
data dir -> database (+ migrations) -> supervisor tree (actors, in their start order). The HTTP server runs
inside it (see `orch.server`). Adding an actor is a few lines in `orch.wiring.actor_specs`: build its child
spec, keep its ref on the node, add a health probe or totals source if it has something to say.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from actors.dispatcher.messages import DispatcherMsg
from actors.locks.messages import LockMsg
from actors.security.messages import SecurityMsg
from actors.storage import Database, StoredEvent
from orch import __version__
from orch.config import Config
from orch.datadir_lock import hold_db_lock
from orch.domain_metrics import DomainMetrics, attach_domain_metrics
from orch.feeds.hub import FeedHub, attach_feeds
from orch.health import (
    ComponentHealth,
    HealthProbe,
    HealthReport,
    ProbeRound,
    SharedProbes,
    TotalsSource,
    overall,
    supervisor_components,
)
from orch.logs import register_secret
from orch.metrics import Metrics
from orch.monitoring import Monitoring, open_monitoring
from runtime import ActorRef, Backoff, ChildSpec, Intensity, Strategy, Supervisor, supervisor

__all__ = ["ActorSpecs", "ComponentHealth", "EventSink", "HealthReport", "Node", "open_node"]

_log = logging.getLogger("orch.node")

ActorSpecs = Callable[["Node"], Sequence[ChildSpec]]
EventSink = Callable[[Sequence[StoredEvent]], None]
"""Takes a committed batch's events, in seq order (read-only; one call per batch)."""

PROBE_DEADLINE = 2.0  # a probe slower than this counts as down: /health must answer promptly
PROBE_MAX_AGE = 1.0  # /health reuses a probe round this young (a flood must not queue database reads)


class Node:
    """Shared handles of a running node. The HTTP layer reads it; it holds no domain state of its own."""

    def __init__(self, config: Config, *, version: str = __version__) -> None:
        self.config = config
        self.version = version
        self.metrics = Metrics()
        self.started_at = time.time()
        self._started = time.monotonic()
        self.shutdown_requested = trio.Event()
        self.db: Database | None = None
        self.supervisor: Supervisor | None = None
        self.nursery: trio.Nursery | None = None  # background work that lives as long as the node
        self.dispatcher: ActorRef[DispatcherMsg] | None = None  # set by orch.wiring when wired
        self.locks: ActorRef[LockMsg] | None = None
        self.security: ActorRef[SecurityMsg] | None = None  # set by orch.security_wiring
        # Run in order once the supervisor tree is up, before the node serves (e.g. the first admin).
        self.on_started: list[Callable[[Node], Awaitable[None]]] = []
        # Each gets every committed batch's events, in seq order, in one call (see `publish_many`).
        self.event_sinks: list[EventSink] = []
        self.feeds: FeedHub | None = None  # live event feeds (SSE, websockets), set by open_node
        self.domain_metrics: DomainMetrics | None = None  # task/queue/lock/webhook metrics, set by open_node
        self.monitoring: Monitoring | None = None  # monitor + notifier handles, set by orch.monitoring
        self._probes: dict[str, HealthProbe] = {}
        self._totals: list[TotalsSource] = []
        self._probe_rounds = SharedProbes(self._probe_round, max_age=PROBE_MAX_AGE)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def request_shutdown(self) -> None:
        """Begin a graceful shutdown: the server stops accepting and drains; /health answers 503."""
        if not self.shutdown_requested.is_set():
            _log.info("shutdown requested")
            self.shutdown_requested.set()

    @property
    def draining(self) -> bool:
        """True once shutdown has been requested."""
        return self.shutdown_requested.is_set()

    def uptime(self) -> float:
        """Seconds since the node was created."""
        return time.monotonic() - self._started

    def database(self) -> Database:
        """The open database (raises before `open_node` opened it)."""
        if self.db is None:
            raise RuntimeError("the database is not open")
        return self.db

    def publish_many(self, events: Sequence[StoredEvent]) -> None:
        """Hand a committed batch's events (seq order) to every sink (SSE/websocket broadcast, metrics,
        waiting requests) in one call each; a sink that fails is logged and the others still get them."""
        for sink in self.event_sinks:
            try:
                sink(events)
            except Exception:
                _log.exception("event sink %r failed", sink)

    # -- health --------------------------------------------------------------------------------------------
    def add_health_probe(self, name: str, probe: HealthProbe) -> None:
        """Report component `name` in /health through `probe` (bounded by PROBE_DEADLINE)."""
        if name in self._probes:
            raise ValueError(f"health probe {name!r} registered twice")
        self._probes[name] = probe
        self._probe_rounds.invalidate()

    def add_totals(self, source: TotalsSource) -> None:
        """Merge `source()`'s counters into the `totals` of /health."""
        self._totals.append(source)
        self._probe_rounds.invalidate()

    async def health(self) -> HealthReport:
        """Probe results (at most PROBE_MAX_AGE old, see `SharedProbes`), the supervisor's children now,
        aggregated."""
        results: dict[str, ComponentHealth] = {}
        if self.supervisor is not None:
            results.update(supervisor_components(self.supervisor.status()))
        totals: dict[str, Any] = {
            "http_requests": self.metrics.http.total,
            "http_requests_in_flight": self.metrics.http.in_flight_now,
        }
        probed = await self._probe_rounds.get()
        results.update(probed.components)
        totals.update(probed.totals)
        return HealthReport(
            status=overall(results, draining=self.draining),
            timestamp=time.time(),
            version=self.version,
            uptime=self.uptime(),
            components=results,
            totals=totals,
        )

    async def _probe_round(self) -> ProbeRound:
        """Run every probe and totals source concurrently, each bounded by PROBE_DEADLINE."""
        results: dict[str, ComponentHealth] = {}
        totals: dict[str, Any] = {}
        async with trio.open_nursery() as nursery:
            for name, probe in self._probes.items():
                nursery.start_soon(self._run_probe, name, probe, results)
            for source in self._totals:
                nursery.start_soon(self._run_totals, source, totals)
        return ProbeRound(results, totals)

    @staticmethod
    async def _run_probe(name: str, probe: HealthProbe, results: dict[str, ComponentHealth]) -> None:
        results[name] = ComponentHealth("down", {"error": "probe timed out"})
        with trio.move_on_after(PROBE_DEADLINE):
            try:
                results[name] = await probe()
            except Exception as exc:
                _log.warning("health probe %s failed", name, exc_info=True)
                results[name] = ComponentHealth("down", {"error": type(exc).__name__})

    @staticmethod
    async def _run_totals(source: TotalsSource, totals: dict[str, Any]) -> None:
        with trio.move_on_after(PROBE_DEADLINE):
            try:
                totals.update(await source())
            except Exception:
                _log.warning("health totals source failed", exc_info=True)


@asynccontextmanager
async def open_node(config: Config, *, actors: ActorSpecs | None = None) -> AsyncIterator[Node]:
    """Start the node's components in order; on exit stop them in reverse order (even when cancelled).

    `actors` builds the root supervisor's children (default: `orch.wiring.actor_specs`).
    """
    for secret in config.secret_values():
        register_secret(secret)
    db_path = config.database.db_path
    await trio.to_thread.run_sync(lambda: db_path.parent.mkdir(parents=True, exist_ok=True))
    node = Node(config)
    node.add_health_probe("http", _http_probe(node))
    try:
        async with AsyncExitStack() as stack:
            node.nursery = await stack.enter_async_context(trio.open_nursery())
            stack.callback(node.nursery.cancel_scope.cancel)  # runs after everything below has unwound
            node.feeds = attach_feeds(node)  # before the database: every committed event is published
            node.domain_metrics = attach_domain_metrics(node)  # counts committed events; gauge refresher
            stack.callback(node.feeds.close)
            stack.enter_context(hold_db_lock(db_path))  # one node per database file (SQLite mode)
            await _open_database(node, stack)
            await open_monitoring(node, stack)  # metrics.db outlives monitor restarts
            await _start_supervisor(node, stack, actors)
            for hook in node.on_started:
                await hook(node)
            _log.info(
                "node started", extra={"data_dir": str(config.database.data_dir), "version": node.version}
            )
            yield node
            _log.info("node stopping")
    finally:
        _log.info("node stopped")


def _http_probe(node: Node) -> HealthProbe:
    async def probe() -> ComponentHealth:
        return ComponentHealth("up", {"in_flight": node.metrics.http.in_flight_now})

    return probe


async def _open_database(node: Node, stack: AsyncExitStack) -> None:
    """Open the SQLite file (storage schema migrates itself); stores migrate their own tables."""
    settings = node.config.database
    node.db = db = await stack.enter_async_context(
        Database.open(settings.db_path, synchronous=settings.synchronous, publish=node.publish_many)
    )

    async def probe() -> ComponentHealth:
        last = await db.last_seq()
        stats = db.statistics()
        return ComponentHealth("up", {"last_seq": last, "queued_writes": stats.queued})

    node.add_health_probe("database", probe)


async def _start_supervisor(node: Node, stack: AsyncExitStack, actors: ActorSpecs | None) -> None:
    """Build the supervisor tree and start it; on the way out it stops first (children in reverse order)."""
    from orch.wiring import RuntimeEventRecorder, actor_specs, mailbox_refresher

    recorder = RuntimeEventRecorder(node)
    node.metrics.add_refresh(mailbox_refresher(node))
    root = supervisor(
        "root",
        (actors or actor_specs)(node),
        strategy=Strategy.ONE_FOR_ONE,
        intensity=Intensity(max_restarts=5, within=10.0),
        backoff=Backoff(min=0.1, max=30.0, reset_after=60.0),
    )
    node.supervisor = sup = Supervisor(root, on_event=recorder)
    supervisor_nursery = await stack.enter_async_context(trio.open_nursery())
    await supervisor_nursery.start(sup.run)
    stack.push_async_callback(sup.stop)
