"""The node's `SampleSource` for the monitor: application metrics read from in-memory state only.

`sample()` runs on the Trio thread every monitor round, so it reads counters and snapshots. Whatever needs
an actor round trip (queue stats, lock stats, core health) comes from the node's one state poller
(`orch.domain_gauges.StateRefresher`, which also feeds /metrics): `sample()` reads its latest
`StateSnapshot`, and `orch.monitoring` asks the poller to run at least every monitor interval. HTTP figures
and the lock wait p95 are windowed the way Prometheus' `rate()` and `histogram_quantile()` would compute
them: the difference between two successive samples (for locks: two successive snapshots).

Series (see `actors.monitor.ports` for the names the default rules use): http_requests_per_s,
http_error_ratio (5xx / all), http_throttled_ratio (429 / all), http_p95_seconds, auth_failures_total
(401 answers), queue_depth{priority}, queue_depth_core{core}, oldest_queued_age_seconds{core},
tasks_active, workers_waiting, locks_active, lock_waiters, lock_wait_p95_seconds, lock_expiries_total,
actor_down{actor}, actor_restarts_total{actor}, actor_mailbox_depth{actor}, sse_connections,
ws_connections, db_errors_total, db_queued_writes, and the core health series of
`orch.monitor_cores.core_series` (core_heartbeat_age_seconds{core}, core_isolated{core},
core_waiting_workers{core}).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from actors.dispatcher.messages import QueueStatsView
from actors.locks.messages import LockStatistics
from actors.monitor.series import series_key
from orch.domain_gauges import StateCollector
from orch.monitor_cores import core_series
from runtime import ChildState, SupervisorStatus

if TYPE_CHECKING:
    from orch.node import Node

__all__ = ["NodeSamples", "quantile_from_buckets"]

_UP = frozenset({ChildState.RUNNING, ChildState.STARTING})

Buckets = list[tuple[float, float]]  # (upper bound, cumulative count), ascending, last is +Inf


class NodeSamples:
    """`SampleSource` over one node (see module doc); actor figures come from ``state``'s snapshot."""

    def __init__(
        self, node: Node, state: StateCollector, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._node = node
        self._state = state
        self._clock = clock
        self._locks: LockStatistics | None = None
        self._prev_locks: LockStatistics | None = None
        self._http_prev: tuple[float, dict[str, float], Buckets] | None = None

    def sample(self) -> dict[str, float]:
        """The current values (cheap; never blocks, never asks an actor)."""
        snap = self._state.snapshot
        out: dict[str, float] = {}
        self._http(out)
        self._actors(out)
        self._queue(snap.queues, out)
        self._lock(snap.locks, out)
        self._io(out)
        if snap.core_health is not None and snap.core_health_at is not None:
            out.update(core_series(snap.core_health, snap.core_health_at))
        return out

    # ---- HTTP ----------------------------------------------------------------------------------------------
    def _http(self, out: dict[str, float]) -> None:
        http = self._node.metrics.http
        by_status: dict[str, float] = {}
        for metric in http.requests.collect():
            for s in metric.samples:
                if s.name.endswith("_total"):
                    status = s.labels.get("status", "")
                    by_status[status] = by_status.get(status, 0.0) + s.value
        buckets = _merged_buckets(http.duration.collect())
        now = self._clock()
        out["auth_failures_total"] = by_status.get("401", 0.0)
        prev, self._http_prev = self._http_prev, (now, by_status, buckets)
        if prev is None or now <= prev[0]:
            return
        then, old_status, old_buckets = prev
        delta = {k: v - old_status.get(k, 0.0) for k, v in by_status.items()}
        total = sum(delta.values())
        out["http_requests_per_s"] = total / (now - then)
        errors = sum(v for k, v in delta.items() if k.startswith("5"))
        out["http_error_ratio"] = errors / total if total > 0 else 0.0
        out["http_throttled_ratio"] = delta.get("429", 0.0) / total if total > 0 else 0.0
        p95 = quantile_from_buckets(0.95, _bucket_delta(buckets, old_buckets))
        if p95 is not None:
            out["http_p95_seconds"] = p95

    # ---- actors --------------------------------------------------------------------------------------------
    def _actors(self, out: dict[str, float]) -> None:
        sup = self._node.supervisor
        if sup is not None:
            _walk(sup.status(), out)

    # ---- queues and locks ----------------------------------------------------------------------------------
    @staticmethod
    def _queue(stats: QueueStatsView | None, out: dict[str, float]) -> None:
        if stats is None:
            return
        by_priority: dict[int, int] = {}
        active = waiting = 0
        for core in stats.cores:
            for priority, n in core.queued_by_priority.items():
                by_priority[priority] = by_priority.get(priority, 0) + n
            out[series_key("queue_depth_core", {"core": core.core_id})] = core.queued
            if core.oldest_queued_age_s is not None:
                out[series_key("oldest_queued_age_seconds", {"core": core.core_id})] = (
                    core.oldest_queued_age_s
                )
            active += core.claimed + core.running
            waiting += core.waiting_workers
        for priority, n in by_priority.items():
            out[series_key("queue_depth", {"priority": str(priority)})] = n
        out["tasks_active"] = active
        out["workers_waiting"] = waiting

    def _lock(self, stats: LockStatistics | None, out: dict[str, float]) -> None:
        if stats is None:
            return
        if stats is not self._locks:  # a newer snapshot since the last sample: the p95 window moves on
            self._prev_locks, self._locks = self._locks, stats
        out["locks_active"] = stats.held
        out["lock_waiters"] = stats.waiting
        out["lock_expiries_total"] = stats.expiries
        if self._prev_locks is not None:
            new = [(b, float(n)) for b, n in stats.wait_buckets] + [(math.inf, float(stats.wait_count))]
            old = [(b, float(n)) for b, n in self._prev_locks.wait_buckets]
            old.append((math.inf, float(self._prev_locks.wait_count)))
            p95 = quantile_from_buckets(0.95, _bucket_delta(new, old))
            out["lock_wait_p95_seconds"] = p95 if p95 is not None else 0.0

    # ---- feeds and database --------------------------------------------------------------------------------
    def _io(self, out: dict[str, float]) -> None:
        node = self._node
        if node.feeds is not None:
            conns: dict[str, float] = {}
            for metric in node.feeds.metrics.connections.collect():
                for s in metric.samples:
                    conns[s.labels.get("transport", "")] = s.value
            out["sse_connections"] = conns.get("sse", 0.0)
            out["ws_connections"] = conns.get("ws_events", 0.0) + conns.get("ws_dispatch", 0.0)
        if node.db is not None:
            stats = node.db.statistics()
            out["db_errors_total"] = stats.batches_failed
            out["db_queued_writes"] = stats.queued


def _walk(status: SupervisorStatus, out: dict[str, float]) -> None:
    for child in status.children:
        if child.supervisor is not None:
            _walk(child.supervisor, out)
            continue
        labels = {"actor": child.id}
        out[series_key("actor_down", labels)] = 0.0 if child.state in _UP else 1.0
        out[series_key("actor_restarts_total", labels)] = child.restarts
        if child.mailbox_depth is not None:
            out[series_key("actor_mailbox_depth", labels)] = child.mailbox_depth


def _merged_buckets(families: Iterable[object]) -> Buckets:
    merged: dict[float, float] = {}
    for family in families:
        for s in getattr(family, "samples", ()):
            if s.name.endswith("_bucket"):
                bound = float(s.labels["le"])
                merged[bound] = merged.get(bound, 0.0) + s.value
    return sorted(merged.items())


def _bucket_delta(new: Buckets, old: Buckets) -> Buckets:
    before = dict(old)
    return [(bound, count - before.get(bound, 0.0)) for bound, count in new]


def quantile_from_buckets(q: float, buckets: Buckets) -> float | None:
    """Prometheus' `histogram_quantile`: linear interpolation inside the bucket holding rank ``q``.

    ``buckets`` are cumulative, ascending, ending with +Inf. None when there are no observations; a rank in
    the +Inf bucket answers the highest finite bound (as Prometheus does).
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound
