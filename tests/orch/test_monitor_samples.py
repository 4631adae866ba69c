"""The monitor's sample source reads the node's state snapshot (the one poller's figures), never an actor:
queue, lock and core health series as the monitor's rules expect them, and the poller's cadence on a real
node (the faster of the monitor's and the metrics' intervals)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from actors.dispatcher.messages import CoreHealthView, CoreStats, QueueStatsView
from actors.locks.messages import LockStatistics
from orch.config import load_config
from orch.domain_gauges import StateCollector, StateSnapshot
from orch.domain_metrics import DomainMetrics
from orch.monitor_samples import NodeSamples
from orch.node import Node

from .helpers import StartNode
from .monitor_helpers import until
from .task_helpers import dispatch, role_client

BUCKETS = (0.01, 0.1, 1.0)


def core_stats(core: str, by_priority: dict[int, int], *, oldest: float | None, held: int = 0) -> CoreStats:
    return CoreStats(
        core_id=core,
        queued=sum(by_priority.values()),
        queued_by_priority=by_priority,
        oldest_queued_age_s=oldest,
        claimed=held,
        running=0,
        retrying=0,
        waiting_workers=2,
        completions_per_s=0.0,
        claims_per_s=0.0,
    )


def lock_stats(*, held: int, waits: tuple[int, int, int], count: int, expiries: int = 0) -> LockStatistics:
    return LockStatistics(
        acquisitions=count,
        contended=0,
        unavailable=0,
        releases=0,
        extensions=0,
        expiries=expiries,
        refused=0,
        abandoned=0,
        held=held,
        waiting=1,
        wait_buckets=tuple(zip(BUCKETS, waits, strict=True)),
        wait_sum=0.0,
        wait_count=count,
    )


def core_health(core: str, *, held: int, stalest: float | None, isolated: bool = False) -> CoreHealthView:
    return CoreHealthView(
        core_id=core,
        queued=0,
        claimed=held,
        running=0,
        isolated=isolated,
        fallback=None,
        isolated_since=None,
        isolation_reason=None,
        waiting_workers=3,
        last_claim_at=None,
        last_heartbeat_at=stalest,
        stalest_heartbeat_at=stalest,
    )


def samples_over(tmp_path: Path) -> tuple[NodeSamples, StateCollector]:
    """A sample source over a node that runs no actors at all: any actor figure must come from the state."""
    config = load_config(env={}, overrides={"database.data_dir": tmp_path / "data"})
    state = StateCollector()
    return NodeSamples(Node(config), state), state


# ------------------------------------------------------------------------------------------ snapshot reads


def test_queue_lock_and_core_series_come_from_the_state_snapshot(tmp_path: Path) -> None:
    samples, state = samples_over(tmp_path)
    assert "tasks_active" not in samples.sample()  # nothing polled yet: no actor figures, no round trip
    queues = QueueStatsView(
        (
            core_stats("A", {5: 2, 0: 1}, oldest=12.5, held=1),
            core_stats("B", {0: 4}, oldest=None),
        ),
        taken_at=0.0,
    )
    health = (core_health("A", held=1, stalest=990.0), core_health("B", held=0, stalest=None, isolated=True))
    state.snapshot = StateSnapshot(
        queues=queues,
        locks=lock_stats(held=3, waits=(0, 0, 0), count=0, expiries=7),
        core_health=health,
        core_health_at=1000.0,
    )
    out = samples.sample()
    assert out['queue_depth{priority="5"}'] == 2 and out['queue_depth{priority="0"}'] == 5
    assert out['queue_depth_core{core="A"}'] == 3 and out['queue_depth_core{core="B"}'] == 4
    assert out['oldest_queued_age_seconds{core="A"}'] == 12.5
    assert 'oldest_queued_age_seconds{core="B"}' not in out
    assert out["tasks_active"] == 1 and out["workers_waiting"] == 4
    assert out["locks_active"] == 3 and out["lock_waiters"] == 1 and out["lock_expiries_total"] == 7
    assert "lock_wait_p95_seconds" not in out  # one snapshot: no window yet
    # Ages as of the refresh that listed the cores (the dispatcher's wall-clock stamps), not of the sample.
    assert out['core_heartbeat_age_seconds{core="A"}'] == 10.0
    assert 'core_heartbeat_age_seconds{core="B"}' not in out  # nothing held: no heartbeat to age
    assert out['core_isolated{core="B"}'] == 1.0 and out['core_isolated{core="A"}'] == 0.0
    assert out['core_waiting_workers{core="A"}'] == 3


def test_lock_wait_p95_is_windowed_between_successive_snapshots(tmp_path: Path) -> None:
    samples, state = samples_over(tmp_path)
    state.snapshot = StateSnapshot(locks=lock_stats(held=0, waits=(10, 10, 10), count=10))
    samples.sample()
    assert "lock_wait_p95_seconds" not in samples.sample()  # the same snapshot again: still no window
    # 10 new waits, all between 0.1 s and 1 s: the p95 of the window ignores the 10 fast ones before it.
    state.snapshot = StateSnapshot(locks=lock_stats(held=0, waits=(10, 10, 20), count=20))
    window = samples.sample()["lock_wait_p95_seconds"]
    assert 0.1 < window <= 1.0
    assert samples.sample()["lock_wait_p95_seconds"] == window  # no newer snapshot: the window stays
    state.snapshot = replace(state.snapshot, locks=lock_stats(held=0, waits=(10, 10, 20), count=20))
    assert samples.sample()["lock_wait_p95_seconds"] == 0.0  # a refresh with no new waits


# ------------------------------------------------------------------------------------------ real node


@pytest.mark.integration
async def test_one_poller_runs_at_the_monitors_faster_cadence_and_feeds_both(start_node: StartNode) -> None:
    node = await start_node(
        **{"monitoring.sample_interval": 1.0, "monitoring.metrics_refresh_interval": 3600.0}
    )
    metrics, monitoring = node.node.domain_metrics, node.node.monitoring
    assert metrics is not None and monitoring is not None
    assert metrics.refresher.interval == 1.0
    async with role_client(node, "operator") as ops:
        await dispatch(ops, "CORE_POLL")

        async def polled() -> dict[str, float] | None:
            out = monitoring.samples.sample()
            return out if out.get('queue_depth_core{core="CORE_POLL"}') == 1 else None

        out = await until(polled, limit=5.0, every=0.1)
        assert out['core_isolated{core="CORE_POLL"}'] == 0.0  # ListCores is polled for the monitor
        # /metrics reads the very same snapshot, so it moved too (despite its own 3600 s interval).
        text = (await ops.get("/metrics")).text
        assert 'orch_queue_depth{core="CORE_POLL",priority_band="normal"} 1.0' in text


@pytest.mark.integration
async def test_without_the_monitor_the_poller_keeps_the_metrics_cadence_and_skips_core_health(
    start_node: StartNode,
) -> None:
    node = await start_node(**{"monitoring.enabled": False, "monitoring.metrics_refresh_interval": 0.05})
    metrics = node.node.domain_metrics
    assert metrics is not None and node.node.monitoring is None
    assert metrics.refresher.interval == 0.05

    async def refreshed_thrice() -> bool:
        return metrics.refresher.refreshes >= 3

    await until(refreshed_thrice, limit=5.0, every=0.05)
    assert metrics.state.snapshot.queues is not None
    assert metrics.state.snapshot.core_health is None


def test_a_reader_must_want_a_positive_interval(tmp_path: Path) -> None:
    config = load_config(env={}, overrides={"database.data_dir": tmp_path / "data"})
    refresher = DomainMetrics(Node(config)).refresher
    with pytest.raises(ValueError, match="positive"):
        refresher.want(0.0)
    refresher.want(7.0)
    refresher.want(2.0, core_health=True)
    assert refresher.interval == 2.0
