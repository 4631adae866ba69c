"""The load generator against the real hello-world baseline (a subprocess on 127.0.0.1)."""

from __future__ import annotations

import pytest

from bench.harness.load import Group, HttpOp, LoadPlan, run_load
from bench.harness.servers import ServerProcess
from bench.scenarios.common import GetHealth, PostEcho

pytestmark = pytest.mark.integration


def test_op_budget_bounds_the_run_and_wrong_answers_count_as_errors(baseline: ServerProcess) -> None:
    groups = (
        Group("h", GetHealth(), clients=4, max_ops=40),
        Group("missing", HttpOp(path="/nope"), clients=2, max_ops=10),
    )
    result = run_load(LoadPlan(baseline.url, groups, seconds=20.0, processes=1))
    group = result.groups["h"]
    assert (group.ops, group.items, sum(group.errors.values())) == (40, 40, 0)
    assert len(group.latencies) == len(group.starts) == 40
    assert all(0 < latency < 5 for latency in group.latencies)
    assert result.elapsed < 10.0
    missing = result.groups["missing"]
    assert missing.ops == 0
    assert missing.errors == {"HTTP 404": 10}
    assert missing.error_samples["HTTP 404"]


def test_clients_split_over_processes_use_unique_sequence_numbers(baseline: ServerProcess) -> None:
    groups = (Group("echo", PostEcho(), clients=3, max_ops=30), Group("health", GetHealth(), 1, max_ops=5))
    result = run_load(LoadPlan(baseline.url, groups, seconds=20.0, processes=2))
    echo = result.groups["echo"]
    assert echo.ops == 30
    assert sorted(int(a) for a in echo.acks) == sorted(set(int(a) for a in echo.acks))
    assert len(echo.acks) == 30
    assert result.groups["health"].ops == 5
    assert result.client_cpu_seconds > 0


def test_paced_group_holds_its_rate_and_stops_at_the_deadline(baseline: ServerProcess) -> None:
    plan = LoadPlan(
        baseline.url, (Group("paced", GetHealth(), clients=4, rate=40.0),), seconds=1.0, processes=1
    )
    result = run_load(plan)
    assert 36 <= result.groups["paced"].ops <= 40
    assert result.elapsed < 3.0


def test_httpx_client_mode_measures_the_same_requests(baseline: ServerProcess) -> None:
    plan = LoadPlan(baseline.url, (Group("h", PostEcho(), 2, max_ops=10),), 10.0, processes=1, client="httpx")
    group = run_load(plan).groups["h"]
    assert (group.ops, dict(group.errors)) == (10, {})
