"""The interval loop with the real psutil sampler (in a worker thread) on virtual time."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import trio
import trio.testing

from actors.monitor.actor import MonitorActor
from actors.monitor.messages import GetStatus, ListSeries, MetricHistory
from actors.monitor.settings import MonitorSettings
from actors.monitor.store import MetricsStore
from runtime import open_actor

from .fakes import Samples

EPOCH = 1_800_000_000.0


@pytest.fixture
def thread_clock() -> trio.testing.MockClock:
    """Virtual time that jumps only after 100 ms of real idleness (the rounds wait on worker threads)."""
    return trio.testing.MockClock(autojump_threshold=0.1)


async def test_rounds_run_every_interval_with_system_and_application_metrics(
    tmp_path: Path, thread_clock: trio.testing.MockClock
) -> None:
    settings = MonitorSettings(interval_s=1.0, rules=(), policies=(), disk_paths=(str(tmp_path),))
    samples = Samples({"tasks_active": 4.0})

    def clock() -> float:
        return EPOCH + trio.current_time()

    async with MetricsStore.open(tmp_path / "metrics.db") as store:
        async with open_actor(lambda: MonitorActor(settings, store, samples=samples, clock=clock)) as ref:
            with trio.fail_after(60):
                while (status := await ref.ask(lambda r: GetStatus(r))).ticks < 10:  # noqa: ASYNC110 (polling an actor)
                    await trio.sleep(0.5)
            series = set(await ref.ask(lambda r: ListSeries(r)))
            history = await ref.ask(lambda r: MetricHistory("tasks_active", EPOCH, EPOCH + 600, r))
    assert status.sample_errors == 0
    offsets = [t - EPOCH for t, _ in history.points]
    # Rounds start on the 1 s grid (a round that overran would skip a slot, never drift or burst).
    assert offsets[0] == 1.0 and all(o.is_integer() for o in offsets)
    assert all(b > a for a, b in itertools.pairwise(offsets)) and len(offsets) >= 10
    expected = {
        "system_cpu_percent", "system_memory_percent", "process_rss_bytes", "process_open_fds",
        "process_threads", "net_sent_bytes_per_s", "process_cpu_seconds_per_s", "tasks_active",
        f'disk_used_percent{{path="{tmp_path}"}}',
    }  # fmt: skip
    assert expected <= series
