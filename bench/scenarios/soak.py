"""Soak: a steady mixed load for `--minutes` (default 10; 20 s with --quick) on one node: paced HTTP
dispatches, HTTP workers completing them, health probes, and SSE subscribers following task.queued.
Memory must stay flat (RSS slope over the second half of the run) and nothing may fail.

The workers claim up to 10 tasks at a time (`WorkerBatchCycle`) so that they keep up with the paced
dispatches: the queue stays short and the load is steady. `BENCH_SOAK_CLAIM_MAX` (environment, default
10) sets tasks per claim; 1 = the single-task routes (`WorkerCycle`: `/claim`, `/tasks/{id}/heartbeat`,
`/tasks/{id}/report`), with which 10 workers complete only ~76 tasks/s of the 200 dispatched."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace

from bench.harness.fanout import FanoutPlan, Subscribers
from bench.harness.load import Group, LoadPlan, Op, run_load
from bench.harness.report import Check, ScenarioResult, TargetCheck, measurement_from
from bench.harness.runner import NODE, Bench, Options
from bench.harness.servers import ResourceMeter
from bench.harness.verify import check_acks_stored, check_streams_complete, stored_values
from bench.scenarios.common import GetHealth
from bench.scenarios.cycle import WorkerBatchCycle, WorkerCycle, batch_setting
from bench.scenarios.dispatch import DispatchOne
from bench.scenarios.fanout import node_feed, settled_cursor

__all__ = ["rss_slope", "run", "worker_op"]

DISPATCH_RATE = 200.0
HEALTH_RATE = 20.0
WORKERS = 10
SUBSCRIBERS = 50


def rss_slope(samples: Sequence[tuple[float, ...]]) -> tuple[float, float]:
    """Least-squares RSS slope (MB per minute) and growth (MB) over the second half of the samples."""
    half = samples[len(samples) // 2 :]
    if len(half) < 2:
        return 0.0, 0.0
    xs = [s[0] for s in half]
    ys = [s[1] for s in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    return slope * 60.0, ys[-1] - ys[0]


def worker_op() -> tuple[Op, str]:
    """The workers' op from `BENCH_SOAK_CLAIM_MAX` (tasks per claim), and a note saying which."""
    n = batch_setting("BENCH_SOAK_CLAIM_MAX", 10)
    op: Op = WorkerCycle() if n == 1 else WorkerBatchCycle(max=n)
    return op, f"workers claim up to {n} task(s) per call"


def run(options: Options) -> ScenarioResult:
    """`python -m bench soak [--minutes M]`."""
    seconds = 20.0 if options.quick else options.minutes * 60.0
    with Bench("soak", replace(options, baseline=False)) as bench:
        if not (bench.has_route("/dispatch", "post") and bench.has_route("/sse/events")):
            bench.skip("node dispatch / SSE routes: not served yet")
            return bench.result
        node = next(t for t in bench.targets() if t.name == NODE)
        worker, label = worker_op()
        bench.result.notes.append(label)
        groups = (
            Group("dispatch (paced)", DispatchOne(), 20, rate=DISPATCH_RATE, headers=bench.auth_headers()),
            Group("worker cycle", worker, WORKERS, headers=bench.system_headers()),
            Group("GET /health (paced)", GetHealth(), 2, rate=HEALTH_RATE, headers=bench.auth_headers()),
        )
        feed = node_feed(bench, "sse")
        before = feed.cursor(node.server.url)
        plan = FanoutPlan(node.server.url, "sse", feed.path, SUBSCRIBERS, processes=1, headers=feed.headers,
                          event_type=feed.event_type, max_seconds=seconds + 600)  # fmt: skip
        print(f"  soak: {seconds:.0f} s of mixed load", file=sys.stderr)
        with Subscribers(plan) as subs, ResourceMeter(node.server.pid, interval=1.0) as meter:
            load = run_load(LoadPlan(node.server.url, groups, seconds, processes=options.processes))
            settled_cursor(feed.cursor, node.server.url)  # calls cancelled at the deadline may still land
            expected = feed.expected(node.server.url, before)
            fan = subs.stop(after=1.0, until_seq=expected[-1] if expected else None)
        for group in groups:
            bench.result.runs.append(
                measurement_from(NODE, 0, load.groups[group.name], load, meter.usage, bucket=10.0)
            )
        bench.result.checks.append(
            check_streams_complete("every SSE subscriber got every task.queued", fan.digests, expected)
        )
        bench.stop_node()
        stored = stored_values(bench.db_path, "SELECT id FROM tasks")
        bench.result.checks.append(
            check_acks_stored(
                "every acknowledged dispatch is stored", load.groups["dispatch (paced)"].acks, stored
            )
        )
        errors = sum(m.errors for m in bench.result.runs)
        bench.result.checks.append(Check("no failed requests", errors == 0, f"{errors} errors"))
        assert meter.usage is not None
        slope, growth = rss_slope(meter.usage.samples)
        bench.result.notes.append(f"RSS second half: slope {slope:+.2f} MB/min, growth {growth:+.1f} MB")
        bench.result.targets.append(
            TargetCheck("RSS growth over the second half of the soak", growth, "<", 5.0, " MB")
        )
    return bench.result
