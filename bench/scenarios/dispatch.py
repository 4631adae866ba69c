"""Durable dispatch over HTTP: `POST /dispatch` (single) and `POST /dispatch/batch`. Each is measured
next to the baseline's `POST /echo` with a body of the same size; afterwards the node is stopped
(SIGTERM) and every task it acknowledged must be in its SQLite store.

`BENCH_DISPATCH_BATCH` (environment, default 100, at most the API's 1,000): tasks per batch request.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from bench.harness.load import Done, Group, HttpAnswer, HttpOp, Op, OpFailed
from bench.harness.report import ScenarioResult, TargetCheck
from bench.harness.runner import BASELINE, NODE, Bench, Options
from bench.scenarios.common import PostEcho, errors_check, expect_status, verify_acks_stored

__all__ = ["DispatchBatch", "DispatchOne", "run_batch", "run_single"]

CORES = 16
BATCH = 100
MAX_BATCH = 1000  # the API's limit (orch.http.routes_tasks.MAX_BATCH)


def batch_size() -> int:
    """Tasks per batch request: `BENCH_DISPATCH_BATCH`, else BATCH."""
    size = int(os.environ.get("BENCH_DISPATCH_BATCH", BATCH))
    if not 1 <= size <= MAX_BATCH:
        raise SystemExit(f"BENCH_DISPATCH_BATCH must be 1..{MAX_BATCH}")
    return size


def task_body(seq: int) -> dict[str, object]:
    """One task: spread over CORES cores and a few priorities."""
    return {"core_id": f"BENCH_{seq % CORES:02d}", "priority": seq % 5, "metadata": {"bench_seq": seq}}


@dataclass(frozen=True, slots=True)
class DispatchOne(HttpOp):
    """`POST /dispatch` -> 201; acks the task id."""

    method: str = "POST"
    path: str = "/dispatch"
    expect: tuple[int, ...] = (201,)

    def request(self, seq: int) -> tuple[str, str, bytes | None]:
        """One task per request."""
        return self.method, self.path, json.dumps(task_body(seq)).encode()

    def accept(self, response: HttpAnswer, seq: int) -> Done:
        """201 and the task id."""
        expect_status(response, *self.expect)
        return Done(acks=(str(response.json()["task_id"]),))


@dataclass(frozen=True, slots=True)
class DispatchBatch(HttpOp):
    """`POST /dispatch/batch` with `size` tasks -> 201; acks every task id."""

    method: str = "POST"
    path: str = "/dispatch/batch"
    expect: tuple[int, ...] = (201,)
    size: int = BATCH

    def request(self, seq: int) -> tuple[str, str, bytes | None]:
        """`size` tasks, numbered from seq * size."""
        tasks = [task_body(seq * self.size + i) for i in range(self.size)]
        return self.method, self.path, json.dumps({"tasks": tasks}).encode()

    def accept(self, response: HttpAnswer, seq: int) -> Done:
        """201 and one accepted task per submitted one."""
        expect_status(response, *self.expect)
        ids = tuple(str(t["task_id"]) for t in response.json()["tasks"])
        if len(ids) != self.size:
            raise OpFailed("short batch", f"{len(ids)} of {self.size} accepted")
        return Done(items=len(ids), acks=ids)


@dataclass(frozen=True, slots=True)
class EchoBatch(PostEcho):
    """The baseline's like-for-like request for a batch: the same body to `/echo`."""

    size: int = BATCH

    def request(self, seq: int) -> tuple[str, str, bytes | None]:
        """A batch-sized body."""
        tasks = [task_body(seq * self.size + i) for i in range(self.size)]
        return self.method, self.path, json.dumps({"tasks": tasks}).encode()

    def accept(self, response: HttpAnswer, seq: int) -> Done:
        """201; counts `size` items so items/s compares with the node's tasks/s."""
        expect_status(response, *self.expect)
        return Done(items=self.size)


def _http_pair(bench: Bench, group: str, node_op: Op, baseline_op: Op, clients: int, run: int) -> list[str]:
    """One run of node and baseline (alternating order); the node's acks."""
    acked: list[str] = []
    for target in bench.targets(run):
        is_node = target.name == NODE
        headers = bench.auth_headers() if is_node else {}
        load, _ = bench.measure(
            target, [Group(group, node_op if is_node else baseline_op, clients)], run=run, headers=headers
        )
        if is_node:
            acked += load.groups[group].acks
    return acked


def run_single(options: Options) -> ScenarioResult:
    """`python -m bench dispatch`."""
    group = "POST /dispatch"
    with Bench("dispatch", options) as bench:
        if not bench.has_route("/dispatch", "post"):
            bench.skip("node POST /dispatch: not served yet")
            return bench.result
        acked: list[str] = []
        for clients in options.clients:
            for run in range(options.runs):
                acked += _http_pair(bench, group, DispatchOne(), PostEcho(), clients, run)
        verify_acks_stored(bench, acked, "task")
        errors_check(bench.result)
        node = bench.result.row(NODE, group, 50) if 50 in options.clients else None
        if node is not None:
            bench.result.targets += [
                TargetCheck("dispatch/s at 50 clients (durable)", node.rps, ">=", 1200, "/s"),
                TargetCheck("dispatch p99 at 50 clients", node.latency.p99_ms, "<", 100, " ms"),
            ]
            if bench.result.row(BASELINE, group, 50) is not None:
                bench.result.targets.append(
                    TargetCheck("dispatch / hello-world rate", node.ratio, ">=", 0.75)
                )
    return bench.result


def run_batch(options: Options) -> ScenarioResult:
    """`python -m bench dispatch-batch`."""
    size = batch_size()
    group = f"POST /dispatch/batch x{size}"
    with Bench("dispatch-batch", options) as bench:
        if not bench.has_route("/dispatch/batch", "post"):
            bench.skip("node POST /dispatch/batch: not served yet")
            return bench.result
        acked: list[str] = []
        for clients in options.clients:
            for run in range(options.runs):
                acked += _http_pair(
                    bench, group, DispatchBatch(size=size), EchoBatch(size=size), clients, run
                )
        verify_acks_stored(bench, acked, "batched task")
        errors_check(bench.result)
        node = bench.result.row(NODE, group)
        if node is not None:
            bench.result.targets.append(
                TargetCheck("batch dispatch tasks/s (durable)", node.items_ps, ">=", 15_000, "/s")
            )
    return bench.result
