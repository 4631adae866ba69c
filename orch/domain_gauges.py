"""The node's ONE poller of actor state, and the queue and lock gauges of /metrics it feeds.

`StateRefresher.run` asks the dispatcher (`QueueStats`, and `ListCores` when a reader wants core health)
and the lock manager (`LockStats`), then swaps an immutable `StateSnapshot` into `StateCollector`. Every
reader registers its cadence with `StateRefresher.want` before the node starts (/metrics:
`monitoring.metrics_refresh_interval`; the monitor's sample source: its sample interval) and the loop runs
at the fastest of them. Readers only read the snapshot: rendering /metrics (in a worker thread, see
`orch.metrics`) and the monitor's `sample()` never talk to an actor, and a slow or stuck actor never slows
them: its figures just stop moving (`orch_domain_metrics_refreshed_timestamp_seconds` shows when they last
did).

Cardinality is bounded: priorities collapse into three bands (low < 0 = normal < high), at most
`monitoring.metrics_max_cores` cores are exported (the busiest; the rest are summed into core="other"),
and a core that no longer appears in the dispatcher's figures disappears from the output.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

import trio
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric

from actors.dispatcher.messages import CoreHealthView, CoreStats, ListCores, QueueStats, QueueStatsView
from actors.locks.messages import LockStatistics, LockStats

if TYPE_CHECKING:
    from orch.node import Node

__all__ = [
    "OTHER_CORE",
    "PRIORITY_BANDS",
    "CoreFigures",
    "StateCollector",
    "StateRefresher",
    "StateSnapshot",
    "cap_cores",
    "priority_band",
]

_log = logging.getLogger("orch.metrics")

OTHER_CORE = "other"
PRIORITY_BANDS = ("low", "normal", "high")
QUERY_DEADLINE = 2.0  # an actor slower than this keeps its previous figures (it may be the symptom)

T = TypeVar("T")


def priority_band(priority: int) -> str:
    """The bounded label of a priority: low (< 0), normal (0), high (> 0)."""
    return "low" if priority < 0 else "normal" if priority == 0 else "high"


@dataclass(frozen=True, slots=True)
class CoreFigures:
    """One exported core: queued tasks per band (in `PRIORITY_BANDS` order), oldest queued age, held tasks."""

    core: str
    depth: tuple[int, int, int]
    oldest_age: float | None
    running: int

    @property
    def queued(self) -> int:
        """Queued tasks over all bands."""
        return sum(self.depth)


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """The latest actor figures; replaced whole by each refresh (safe to read from the render thread).

    /metrics exports `cores` (banded, capped), `cores_seen`, `locks` and `refreshed_at`; the monitor's
    sample source reads `queues` (every core, raw priorities), `locks` and `core_health` (as of the wall
    time `core_health_at`). A part whose query failed keeps its previous value.
    """

    cores: tuple[CoreFigures, ...] = ()
    cores_seen: int = 0
    locks: LockStatistics | None = None
    refreshed_at: float | None = None
    queues: QueueStatsView | None = None
    core_health: tuple[CoreHealthView, ...] | None = None
    core_health_at: float | None = None


def figures_of(stats: CoreStats) -> CoreFigures:
    """A dispatcher's per-core figures as exported (priorities banded; held = claimed + running)."""
    depth = [0, 0, 0]
    for priority, n in stats.queued_by_priority.items():
        depth[PRIORITY_BANDS.index(priority_band(priority))] += n
    return CoreFigures(
        stats.core_id,
        (depth[0], depth[1], depth[2]),
        stats.oldest_queued_age_s,
        stats.claimed + stats.running,
    )


def cap_cores(cores: Sequence[CoreFigures], limit: int) -> tuple[CoreFigures, ...]:
    """At most `limit` cores, the busiest first; when over, the rest (and a real core named "other") are
    summed into one core="other" (depths and held tasks added, the oldest age the maximum)."""
    if len(cores) <= limit:
        return tuple(cores)
    ranked = sorted(cores, key=lambda c: (c.core == OTHER_CORE, -c.queued, -c.running, c.core))
    kept, rest = ranked[: max(limit - 1, 0)], ranked[max(limit - 1, 0) :]
    ages = [c.oldest_age for c in rest if c.oldest_age is not None]
    depth = tuple(sum(c.depth[i] for c in rest) for i in range(3))
    other = CoreFigures(
        OTHER_CORE, (depth[0], depth[1], depth[2]), max(ages) if ages else None, sum(c.running for c in rest)
    )
    return (*kept, other)


class StateCollector:
    """A prometheus collector exporting the current `StateSnapshot` (no I/O, no actor round trips)."""

    def __init__(self) -> None:
        self.snapshot = StateSnapshot()

    def describe(self) -> Iterable[Metric]:
        """The families (for the registry's duplicate-name check), without samples."""
        return list(_families(StateSnapshot()))

    def collect(self) -> Iterable[Metric]:
        """The families with the latest figures."""
        return list(_families(self.snapshot))


def _families(snap: StateSnapshot) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "orch_queue_depth", "Queued tasks by core and priority band.", labels=["core", "priority_band"]
    )
    oldest = GaugeMetricFamily(
        "orch_queue_oldest_age_seconds", "Age of the oldest queued task, by core.", labels=["core"]
    )
    running = GaugeMetricFamily(
        "orch_tasks_running", "Tasks held by workers (claimed or running), by core.", labels=["core"]
    )
    for core in snap.cores:
        for band, n in zip(PRIORITY_BANDS, core.depth, strict=True):
            depth.add_metric([core.core, band], n)
        oldest.add_metric([core.core], core.oldest_age or 0.0)
        running.add_metric([core.core], core.running)
    yield from (depth, oldest, running)
    yield GaugeMetricFamily(
        "orch_queue_cores",
        "Cores the dispatcher reports (before capping to the exported ones).",
        snap.cores_seen,
    )
    yield from _lock_families(snap.locks)
    refreshed = GaugeMetricFamily(
        "orch_domain_metrics_refreshed_timestamp_seconds",
        "Unix time of the last successful queue/lock figures refresh.",
    )
    if snap.refreshed_at is not None:
        refreshed.add_metric([], snap.refreshed_at)
    yield refreshed


def _lock_families(locks: LockStatistics | None) -> Iterator[Metric]:
    held = GaugeMetricFamily("orch_locks_held", "Leases held now.")
    waiters = GaugeMetricFamily("orch_lock_waiters", "Acquire requests queued for a resource now.")
    wait = HistogramMetricFamily(
        "orch_lock_wait_seconds", "Time acquirers waited for a grant (since the lock manager started)."
    )
    if locks is not None:
        held.add_metric([], locks.held)
        waiters.add_metric([], locks.waiting)
        buckets = [(str(float(bound)), float(n)) for bound, n in locks.wait_buckets]
        buckets.append(("+Inf", float(locks.wait_count)))
        wait.add_metric([], buckets, locks.wait_sum)
    yield from (held, waiters, wait)


class StateRefresher:
    """Fills a `StateCollector` from the node's dispatcher and lock manager (see module doc)."""

    def __init__(
        self,
        node: Node,
        collector: StateCollector,
        *,
        max_cores: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._node = node
        self._collector = collector
        self._max_cores = max_cores
        self._clock = clock
        self._failing: set[str] = set()
        self._intervals: list[float] = []
        self._core_health = False
        self.refreshes = 0

    def want(self, interval: float, *, core_health: bool = False) -> None:
        """A reader needs figures at least every `interval` seconds (and `ListCores` when `core_health`).
        Call before `run` starts: the loop runs at the fastest interval wanted."""
        if not interval > 0:
            raise ValueError(f"refresh interval must be positive, got {interval!r}")
        self._intervals.append(interval)
        self._core_health = self._core_health or core_health

    @property
    def interval(self) -> float:
        """Seconds between rounds: the fastest any reader wants (infinite when nobody wants any)."""
        return min(self._intervals, default=math.inf)

    async def run(self) -> None:
        """Refresh now, then every `interval` seconds, until cancelled."""
        while True:
            await self.refresh()
            await trio.sleep(self.interval)

    async def refresh(self) -> None:
        """One round: each query is bounded; a part that fails keeps its previous figures."""
        node, snap = self._node, self._collector.snapshot
        ok = True
        if node.dispatcher is not None:
            view: QueueStatsView | None = await self._query("dispatcher", node.dispatcher.ask(QueueStats))
            if view is not None:
                cores = cap_cores([figures_of(c) for c in view.cores], self._max_cores)
                snap = replace(snap, queues=view, cores=cores, cores_seen=len(view.cores))
            ok = view is not None
            if self._core_health:
                health: tuple[CoreHealthView, ...] | None = await self._query(
                    "dispatcher cores", node.dispatcher.ask(ListCores)
                )
                if health is not None:
                    snap = replace(snap, core_health=health, core_health_at=self._clock())
        if node.locks is not None:
            locks: LockStatistics | None = await self._query("locks", node.locks.ask(LockStats))
            if locks is not None:
                snap = replace(snap, locks=locks)
            ok = ok and locks is not None
        self._collector.snapshot = replace(snap, refreshed_at=self._clock()) if ok else snap
        self.refreshes += 1

    async def _query(self, name: str, work: Awaitable[T]) -> T | None:
        with trio.move_on_after(QUERY_DEADLINE):
            try:
                answer = await work
            except Exception as exc:  # e.g. ActorStopped during shutdown, ActorCrashed: keep old figures
                self._failed(name, type(exc).__name__)
                return None
            if name in self._failing:
                self._failing.discard(name)
                _log.info("state refresh from %s recovered", name)
            return answer
        self._failed(name, "no answer in time")
        return None

    def _failed(self, name: str, why: str) -> None:
        if name not in self._failing and not self._node.draining:  # log transitions only, not every round
            _log.warning("state refresh from %s failed: %s", name, why)
        self._failing.add(name)
