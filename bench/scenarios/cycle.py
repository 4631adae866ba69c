"""The full worker cycle over HTTP: dispatchers and WORKERS workers, each task claim -> heartbeat ->
report; every reported task must be `succeeded` in the node's store afterwards (node only, no baseline).

Batching, as high-throughput workers do (environment variables, read when the scenario starts):

* `BENCH_CYCLE_MAX` (default 10): tasks per claim. Above 1 a worker calls `POST /cores/{core}/claims`
  with `max` N, then `POST /tasks/heartbeats` and `POST /tasks/reports` for the tasks it got (3 requests
  per N tasks); 1 = the single-task routes (`/claim`, `/tasks/{id}/heartbeat`, `/tasks/{id}/report`).
* `BENCH_CYCLE_DISPATCH` (default 20): tasks per dispatcher request. Above 1 `POST /dispatch/batch`;
  1 = `POST /dispatch`.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from bench.harness.load import Call, ClientEnv, Done, Group, HttpAnswer, Op, OpFailed
from bench.harness.report import Check, ScenarioResult, TargetCheck
from bench.harness.runner import NODE, Bench, Options
from bench.harness.verify import stored_values
from bench.scenarios.common import errors_check, expect_status, verify_acks_stored
from bench.scenarios.dispatch import CORES, DispatchBatch, DispatchOne

__all__ = ["WORKERS", "WorkerBatchCycle", "WorkerCycle", "batch_setting", "run_cycle", "worker_group"]

WORKERS = 20
_JSON = {"Content-Type": "application/json"}


def worker_group(name: str, dispatchers: int) -> str:
    """The workers' group at one dispatcher level. Each level is its own row and its own target check:
    a median over the runs of several levels would mix different configurations."""
    return f"{name} ({dispatchers} dispatchers)"


def batch_setting(name: str, default: int, *, minimum: int = 1) -> int:
    """An integer >= `minimum` from the environment (`default` when unset)."""
    value = int(os.environ.get(name, default))
    if value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}")
    return value


@dataclass(frozen=True, slots=True)
class WorkerCycle:
    """One worker, one task per call: claim (long-poll) -> heartbeat -> report succeeded; acks the task
    id. A claim that finds nothing within `wait` is a call with zero items (not an error)."""

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

        async def call(seq: int) -> Done:
            claimed = await env.http.request("POST", f"/cores/{core}/claim", claim_body.encode(), _JSON)
            if claimed.status_code == 204:
                return Done(items=0)
            expect_status(claimed, 200)
            body = claimed.json()
            task_id, token = body["task"]["task_id"], body["lease_token"]
            lease = json.dumps({"lease_token": token}).encode()
            expect_status(await env.http.request("POST", f"/tasks/{task_id}/heartbeat", lease, _JSON), 200)
            report = json.dumps(
                {"lease_token": token, "status": "succeeded", "result": {"seq": seq}}
            ).encode()
            expect_status(await env.http.request("POST", f"/tasks/{task_id}/report", report, _JSON), 200)
            return Done(items=1, acks=(str(task_id),))

        yield call


@dataclass(frozen=True, slots=True)
class WorkerBatchCycle:
    """One worker, up to `max` tasks per call: `POST /cores/{core}/claims` (long-poll), one
    `POST /tasks/heartbeats` and one `POST /tasks/reports` (succeeded) for the tasks it got. Every item
    must answer ok (and every report `succeeded`); acks the task ids."""

    max: int = 10
    cores: int = CORES
    lease: float = 30.0
    wait: float = 1.0

    @asynccontextmanager
    async def open(self, env: ClientEnv) -> AsyncIterator[Call]:
        """Each worker serves one core (workers are spread evenly over the cores)."""
        core = f"BENCH_{env.client_id % self.cores:02d}"
        claim_body = json.dumps(
            {"worker_id": f"bench-w{env.client_id}", "lease": self.lease, "wait": self.wait, "max": self.max}
        ).encode()

        async def call(seq: int) -> Done:
            claimed = await env.http.request("POST", f"/cores/{core}/claims", claim_body, _JSON)
            if claimed.status_code == 204:
                return Done(items=0)
            expect_status(claimed, 200)
            held = [(c["task"]["task_id"], c["lease_token"]) for c in claimed.json()["claims"]]
            beats = [{"task_id": t, "lease_token": k} for t, k in held]
            _all_ok(await _post(env, "/tasks/heartbeats", {"heartbeats": beats}), "heartbeat")
            done = {"status": "succeeded", "result": {"seq": seq}}
            reports = [{"task_id": t, "lease_token": k, **done} for t, k in held]
            for result in _all_ok(await _post(env, "/tasks/reports", {"reports": reports}), "report"):
                if result["task"]["status"] != "succeeded":
                    raise OpFailed("report not applied", str(result)[:300])
            return Done(items=len(held), acks=tuple(str(t) for t, _ in held))

        yield call


async def _post(env: ClientEnv, path: str, body: Mapping[str, Any]) -> HttpAnswer:
    return await env.http.request("POST", path, json.dumps(body).encode(), _JSON)


def _all_ok(response: HttpAnswer, what: str) -> list[dict[str, Any]]:
    expect_status(response, 200)
    results: list[dict[str, Any]] = response.json()["results"]
    for result in results:
        if not result.get("ok"):
            error = result.get("error") or {}
            raise OpFailed(f"{what} item {error.get('status', '?')}", str(error.get("detail"))[:300])
    return results


def cycle_ops() -> tuple[Op, Op, str]:
    """The dispatcher's and the worker's op from the environment, and a label saying which."""
    n = batch_setting("BENCH_CYCLE_MAX", 10)
    d = batch_setting("BENCH_CYCLE_DISPATCH", 20)
    dispatcher: Op = DispatchOne() if d == 1 else DispatchBatch(size=d)
    worker: Op = WorkerCycle() if n == 1 else WorkerBatchCycle(max=n)
    return dispatcher, worker, f"claim max {n}, dispatch {d}/request"


def run_cycle(options: Options) -> ScenarioResult:
    """`python -m bench cycle`: `clients` dispatchers and WORKERS workers at once, node only."""
    with Bench("cycle", replace(options, baseline=False)) as bench:
        if not (bench.has_route("/dispatch", "post") and bench.has_route("/cores/{core_id}/claim", "post")):
            bench.skip("node dispatch/claim routes: not served yet")
            return bench.result
        node = next(t for t in bench.targets() if t.name == NODE)
        dispatcher, worker, label = cycle_ops()
        acked: list[str] = []
        for clients in options.clients:
            workers = worker_group("worker cycle", clients)
            for run in range(options.runs):
                # Dispatchers act as the admin, workers as a system principal (workers may not be humans).
                groups = [
                    Group("dispatch", dispatcher, clients, headers=bench.auth_headers()),
                    Group(workers, worker, WORKERS, headers=bench.system_headers()),
                ]
                load, _ = bench.measure(node, groups, run=run)
                acked += load.groups[workers].acks
        verify_acks_stored(bench, acked, "completed task")
        done = stored_values(bench.db_path, "SELECT id FROM tasks WHERE status = 'succeeded'")
        missing = set(acked) - set(done)
        bench.result.checks.append(
            Check(
                "every reported task is succeeded in the store", not missing, f"{len(missing)} not succeeded"
            )
        )
        errors_check(bench.result)
        for clients in options.clients:
            row = bench.result.row(NODE, worker_group("worker cycle", clients))
            if row is not None:
                target = f"full cycle tasks/s with {WORKERS} HTTP workers, {clients} dispatchers ({label})"
                bench.result.targets.append(TargetCheck(target, row.items_ps, ">=", 600, "/s"))
    return bench.result
