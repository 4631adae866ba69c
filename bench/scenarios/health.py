"""GET /health on a fresh node vs GET /health on the hello-world baseline, same run, same box."""

from __future__ import annotations

from bench.harness.load import Group
from bench.harness.report import Check, ScenarioResult, TargetCheck
from bench.harness.runner import BASELINE, NODE, Bench, Options
from bench.scenarios.common import GetHealth

GROUP = "GET /health"


def run(options: Options) -> ScenarioResult:
    """Every concurrency level, `runs` times, alternating node and baseline; then wrk at the top level."""
    with Bench("health", options) as bench:
        for clients in options.clients:
            for run_index in range(options.runs):
                for target in bench.targets(run_index):
                    bench.measure(target, [Group(GROUP, GetHealth(), clients)], run=run_index)
        if options.wrk:
            top = max(options.clients)
            for run_index in range(options.runs):
                for target in bench.targets(run_index):
                    bench.wrk(target, "/health", top, run=run_index)
        result = bench.result
        result.finish()
        errors = sum(m.errors for m in result.runs)
        result.checks.append(Check("no failed requests", errors == 0, f"{errors} errors in all runs"))
        node = result.row(NODE, GROUP)
        if node is not None:
            result.targets += [
                TargetCheck("node GET /health rate (seed: 1,000 HTTP req/s)", node.rps, ">=", 1000, "/s"),
                TargetCheck(
                    "node GET /health p95 (seed API: < 200 ms)", node.latency.p95_ms, "<", 200, " ms"
                ),
                TargetCheck("node idle RSS (< 120 MB)", bench.idle_rss_mb, "<", 120, " MB"),
            ]
            if result.row(BASELINE, GROUP) is not None:
                result.targets.append(TargetCheck("node / baseline rate", node.ratio, ">=", 0.75))
    return bench.result
