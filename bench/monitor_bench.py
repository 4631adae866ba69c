"""Monitoring overhead: CPU seconds the monitor uses per wall second at a 1 s sampling interval.

Runs the real `MonitorActor` (psutil sampler in a worker thread, metrics.db via group commit, the default
rules plus an anomaly rule on every application series, an event log) against a synthetic application
sample source of ``--series`` series, and a notifier with no channels. Process CPU time (user + system, all
threads) is measured over the run, after a warm-up, and compared with one idle Trio process of the same
length (the floor). Usage:

    .venv/bin/python bench/monitor_bench.py [--seconds 60] [--interval 1] [--series 60]
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import trio

from actors.monitor import DatabaseEventSink, MetricsStore, MonitorActor, MonitorSettings
from actors.monitor.messages import GetStatus
from actors.monitor.settings import DEFAULT_RULES, AlertRule, Anomaly
from actors.notifier import NotifierActor, NotifierSettings
from actors.storage import Database
from runtime import open_actor


class AppSamples:
    """Synthetic application metrics: queue depths, latencies, counters, per-actor and per-core series."""

    def __init__(self, series: int) -> None:
        self._rng = random.Random(1)
        self._counter = 0.0
        self._keys = [f'queue_depth{{priority="{p}"}}' for p in range(10)]
        self._keys += [f'actor_mailbox_depth{{actor="a{i}"}}' for i in range(10)]
        self._keys += [f'core_heartbeat_age_seconds{{core="c{i}"}}' for i in range(10)]
        while len(self._keys) < series:
            self._keys.append(f'app_gauge{{n="{len(self._keys)}"}}')

    def sample(self) -> Mapping[str, float]:
        self._counter += self._rng.uniform(50, 150)
        out = {key: self._rng.uniform(0, 20) for key in self._keys}
        out |= {"http_p95_seconds": 0.1, "http_error_ratio": 0.001, "http_requests_total": self._counter}
        return out


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(seconds: float) -> tuple[float, float]:
    wall0, cpu0 = time.perf_counter(), _cpu()
    await trio.sleep(seconds)
    return time.perf_counter() - wall0, _cpu() - cpu0


async def run(seconds: float, interval: float, series: int) -> None:
    idle_wall, idle_cpu = await _measure(min(seconds, 10))
    rules = (*DEFAULT_RULES, AlertRule("AppAnomaly", "app_gauge", Anomaly.of(span=60)))
    settings = MonitorSettings(interval_s=interval, rules=rules)
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            MetricsStore.open(Path(tmp) / "metrics.db") as store,
            Database.open(Path(tmp) / "orch.db") as events,
            open_actor(lambda: NotifierActor(NotifierSettings()), name="notifier") as notifier,
            open_actor(
                lambda: MonitorActor(
                    settings, store, samples=AppSamples(series), events=DatabaseEventSink(events),
                    notifier=notifier,
                ),
                name="monitor",
            ) as monitor,
        ):  # fmt: skip
            await trio.sleep(3 * interval)  # warm-up: first rounds, psutil priming, page cache
            wall, cpu = await _measure(seconds)
            status = await monitor.ask(lambda r: GetStatus(r))
    share = cpu / wall
    floor = idle_cpu / idle_wall
    print(f"interval {interval:g}s, {status.series} series/round, {status.ticks} rounds in {wall:.1f}s wall")
    print(f"last round took {1000 * (status.last_tick_duration_s or 0):.1f} ms")
    print(f"process CPU: {cpu:.3f}s over {wall:.1f}s = {100 * share:.2f}% of one core")
    overhead = 100 * (share - floor)
    print(f"idle Trio floor: {100 * floor:.3f}%  ->  monitoring overhead ~{overhead:.2f}% of one core")


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--series", type=int, default=60, help="application series per round")
    args = parser.parse_args()
    trio.run(run, args.seconds, args.interval, args.series)


if __name__ == "__main__":
    main()
