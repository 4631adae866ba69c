"""Durable dispatch over HTTP: `POST /dispatch` (single), `POST /dispatch/batch`, and the full worker
cycle dispatch -> claim -> heartbeat -> report with N workers. Each is measured next to the baseline's
`POST /echo` with a body of the same size; afterwards the node is stopped (SIGTERM) and every task it
acknowledged must be in its SQLite store.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from bench.harness.load import Call, ClientEnv, Done, Group, HttpAnswer, HttpOp, Op, OpFailed
from bench.harness.report import Check, ScenarioResult, TargetCheck
from bench.harness.runner import BASELINE, NODE, Bench, Options
from bench.harness.verify import check_acks_stored, stored_values
from bench.scenarios.common import PostEcho

__all__ = ["DispatchBatch", "DispatchOne", "WorkerCycle", "run_batch", "run_cycle", "run_single"]

CORES = 16
BATCH = 100
WORKERS = 20


def task_body(seq: int) -> dict[str, object]:
    """One task: spread over CORES cores and a few priorities."""
    return {"core_id": f"BENCH_{seq % CORES:02d}", "priority": seq % 5, "metadata": {"bench_seq": seq}}


def _expect(response: HttpAnswer, *statuses: int) -> None:
    if response.status_code not in statuses:
        raise OpFailed(f"HTTP {response.status_code}", response.text[:300])


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
        _expect(response, *self.expect)
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
        _expect(response, *self.expect)
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
        _expect(response, *self.expect)
        return Done(items=self.size)


@dataclass(frozen=True, slots=True)
class WorkerCycle:
    """One worker: claim (long-poll) -> heartbeat -> report succeeded, per call; acks the task id.
    A claim that finds nothing within `wait` is a call with zero items (not an error)."""

    cores: int = CORES
    lease: float = 30.0
    wait: float = 1.0

    @asynccontextmanager
    async def open(self, env: ClientEnv) -> AsyncIterator[Call]:
        """Each worker serves one core (workers are spread evenly over the cores)."""
        core = f"BENCH_{env.client_id % self.cores:02d}"
        claim_body = json.dumps(
            {"worker_id": f"bench-w{env.client_id}", "lease": self.lease, "wait": self.wait}
        )
        json_headers = {"Content-Type": "application/json"}

        async def call(seq: int) -> Done:
            claimed = await env.http.request(
                "POST", f"/cores/{core}/claim", claim_body.encode(), json_headers
            )
            if claimed.status_code == 204:
                return Done(items=0)
            _expect(claimed, 200)
            body = claimed.json()
            task_id, token = body["task"]["task_id"], body["lease_token"]
            lease = json.dumps({"lease_token": token}).encode()
            _expect(await env.http.request("POST", f"/tasks/{task_id}/heartbeat", lease, json_headers), 200)
            report = json.dumps(
                {"lease_token": token, "status": "succeeded", "result": {"seq": seq}}
            ).encode()
            _expect(await env.http.request("POST", f"/tasks/{task_id}/report", report, json_headers), 200)
            return Done(items=1, acks=(str(task_id),))

        yield call


def _verify_stored(bench: Bench, acked: list[str], what: str) -> None:
    bench.stop_node()
    stored = stored_values(bench.db_path, "SELECT id FROM tasks")
    bench.result.checks.append(check_acks_stored(f"every acknowledged {what} is in the store", acked, stored))


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
        _verify_stored(bench, acked, "task")
        _errors_check(bench.result)
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
    group = f"POST /dispatch/batch x{BATCH}"
    with Bench("dispatch-batch", options) as bench:
        if not bench.has_route("/dispatch/batch", "post"):
            bench.skip("node POST /dispatch/batch: not served yet")
            return bench.result
        acked: list[str] = []
        for clients in options.clients:
            for run in range(options.runs):
                acked += _http_pair(bench, group, DispatchBatch(), EchoBatch(), clients, run)
        _verify_stored(bench, acked, "batched task")
        _errors_check(bench.result)
        node = bench.result.row(NODE, group)
        if node is not None:
            bench.result.targets.append(
                TargetCheck("batch dispatch tasks/s (durable)", node.items_ps, ">=", 15_000, "/s")
            )
    return bench.result


def run_cycle(options: Options) -> ScenarioResult:
    """`python -m bench cycle`: `clients` dispatchers and WORKERS workers at once, node only."""
    with Bench("cycle", replace(options, baseline=False)) as bench:
        if not (bench.has_route("/dispatch", "post") and bench.has_route("/cores/{core_id}/claim", "post")):
            bench.skip("node dispatch/claim routes: not served yet")
            return bench.result
        node = next(t for t in bench.targets() if t.name == NODE)
        acked: list[str] = []
        for clients in options.clients:
            for run in range(options.runs):
                # Dispatchers act as the admin, workers as a system principal (workers may not be humans).
                groups = [
                    Group("dispatch", DispatchOne(), clients, headers=bench.auth_headers()),
                    Group("worker cycle", WorkerCycle(), WORKERS, headers=bench.system_headers()),
                ]
                load, _ = bench.measure(node, groups, run=run)
                acked += load.groups["worker cycle"].acks
        _verify_stored(bench, acked, "completed task")
        done = stored_values(bench.db_path, "SELECT id FROM tasks WHERE status = 'succeeded'")
        missing = set(acked) - set(done)
        bench.result.checks.append(
            Check(
                "every reported task is succeeded in the store", not missing, f"{len(missing)} not succeeded"
            )
        )
        _errors_check(bench.result)
        row = bench.result.row(NODE, "worker cycle")
        if row is not None:
            bench.result.targets.append(
                TargetCheck(f"full cycle tasks/s with {WORKERS} HTTP workers", row.items_ps, ">=", 600, "/s")
            )
    return bench.result


def _errors_check(result: ScenarioResult) -> None:
    """No failed request in any run; and the medians, which the targets are read from."""
    errors = sum(m.errors for m in result.runs)
    result.checks.append(Check("no failed requests", errors == 0, f"{errors} errors in all runs"))
    result.finish()
