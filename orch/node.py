"""The node: one process = one data dir = one supervisor tree, and what the HTTP edge may see of it.

`open_node(config)` wires everything in start order and unwinds it in reverse on exit:
data dir -> database -> actors (supervisor tree) ; the HTTP server runs inside, see `orch.server`.
Adding an actor is a few lines in `_start_actors`: build its child spec, keep its ref on the node, add a
health probe / totals source if it has something to say.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import trio

from orch import __version__
from orch.config import Config
from orch.logs import register_secret
from orch.metrics import Metrics

__all__ = ["ComponentHealth", "HealthReport", "Node", "open_node"]

_log = logging.getLogger("orch.node")

ComponentStatus = Literal["up", "degraded", "down"]
HealthProbe = Callable[[], Awaitable["ComponentHealth"]]
TotalsSource = Callable[[], Awaitable[Mapping[str, Any]]]

PROBE_DEADLINE = 2.0  # a probe slower than this counts as down; /health must answer promptly


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    """One component's state for `/health`: up, degraded (working, e.g. restarting) or down."""

    status: ComponentStatus
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The `/health` body. `ok` is False (503) when a component is down or the node is draining."""

    status: Literal["healthy", "degraded", "unhealthy", "shutting_down"]
    timestamp: float
    version: str
    uptime: float
    components: Mapping[str, ComponentHealth]
    totals: Mapping[str, Any]

    @property
    def ok(self) -> bool:
        """True when the node should receive traffic."""
        return self.status in ("healthy", "degraded")

    def to_json(self) -> dict[str, Any]:
        """The JSON document."""
        return {
            "status": self.status,
            "timestamp": datetime.fromtimestamp(self.timestamp, UTC).isoformat(timespec="milliseconds"),
            "version": self.version,
            "uptime_seconds": round(self.uptime, 3),
            "components": {
                name: {"status": c.status, **c.detail} for name, c in sorted(self.components.items())
            },
            "totals": dict(self.totals),
        }


class Node:
    """Shared handles of a running node. The HTTP layer reads it; it holds no domain state itself."""

    def __init__(self, config: Config, *, version: str = __version__) -> None:
        self.config = config
        self.version = version
        self.metrics = Metrics()
        self.started_at = time.time()
        self._started = time.monotonic()
        self.shutdown_requested = trio.Event()
        self._probes: dict[str, HealthProbe] = {}
        self._totals: list[TotalsSource] = []

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

    # -- health --------------------------------------------------------------------------------------------
    def add_health_probe(self, name: str, probe: HealthProbe) -> None:
        """Report component `name` in /health through `probe` (bounded by PROBE_DEADLINE)."""
        if name in self._probes:
            raise ValueError(f"health probe {name!r} registered twice")
        self._probes[name] = probe

    def add_totals(self, source: TotalsSource) -> None:
        """Merge `source()`'s counters into the `totals` of /health."""
        self._totals.append(source)

    async def health(self) -> HealthReport:
        """Run every probe concurrently (each bounded) and aggregate."""
        results: dict[str, ComponentHealth] = {}
        totals: dict[str, Any] = {
            "http_requests": self.metrics.http.total,
            "http_requests_in_flight": self.metrics.http.in_flight_now,
        }

        async def run_probe(name: str, probe: HealthProbe) -> None:
            results[name] = ComponentHealth("down", {"error": "probe timed out"})
            with trio.move_on_after(PROBE_DEADLINE):
                try:
                    results[name] = await probe()
                except Exception as exc:
                    _log.warning("health probe %s failed", name, exc_info=True)
                    results[name] = ComponentHealth("down", {"error": type(exc).__name__})

        async def run_totals(source: TotalsSource) -> None:
            with trio.move_on_after(PROBE_DEADLINE):
                try:
                    totals.update(await source())
                except Exception:
                    _log.warning("health totals source failed", exc_info=True)

        async with trio.open_nursery() as nursery:
            for name, probe in self._probes.items():
                nursery.start_soon(run_probe, name, probe)
            for source in self._totals:
                nursery.start_soon(run_totals, source)
        return HealthReport(
            status=_overall(results, draining=self.draining),
            timestamp=time.time(),
            version=self.version,
            uptime=self.uptime(),
            components=results,
            totals=totals,
        )


def _overall(
    components: Mapping[str, ComponentHealth], *, draining: bool
) -> Literal["healthy", "degraded", "unhealthy", "shutting_down"]:
    if draining:
        return "shutting_down"
    states = {c.status for c in components.values()}
    if "down" in states:
        return "unhealthy"
    return "degraded" if "degraded" in states else "healthy"


@asynccontextmanager
async def open_node(config: Config) -> AsyncIterator[Node]:
    """Start the node's components in order; on exit stop them in reverse order (even when cancelled)."""
    for secret in config.secret_values():
        register_secret(secret)
    data_dir = config.database.data_dir
    await trio.to_thread.run_sync(lambda: data_dir.mkdir(parents=True, exist_ok=True))
    node = Node(config)
    node.add_health_probe("http", _http_probe(node))
    try:
        async with AsyncExitStack() as stack:
            await _open_database(node, stack)
            await _start_actors(node, stack)
            _log.info("node started", extra={"data_dir": str(data_dir), "version": node.version})
            yield node
            _log.info("node stopping")
    finally:
        _log.info("node stopped")


def _http_probe(node: Node) -> HealthProbe:
    async def probe() -> ComponentHealth:
        return ComponentHealth("up", {"in_flight": node.metrics.http.in_flight_now})

    return probe


async def _open_database(node: Node, stack: AsyncExitStack) -> None:
    """Open and migrate the SQLite database (wired when the storage layer lands)."""
    del node, stack


async def _start_actors(node: Node, stack: AsyncExitStack) -> None:
    """Build the supervisor tree and start it; its stop (reverse order) is pushed on `stack`."""
    del node, stack
