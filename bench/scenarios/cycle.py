"""The full worker cycle over HTTP: dispatchers and N workers doing claim -> heartbeat -> report; every
reported task must be `succeeded` in the node's store afterwards (node only, no baseline).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from bench.harness.load import Call, ClientEnv, Done, Group
from bench.harness.report import Check, ScenarioResult, TargetCheck
from bench.harness.runner import NODE, Bench, Options
from bench.harness.verify import stored_values
from bench.scenarios.common import errors_check, expect_status, verify_acks_stored
from bench.scenarios.dispatch import CORES, DispatchOne

__all__ = ["WORKERS", "WorkerCycle", "run_cycle"]

WORKERS = 20


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
            expect_status(claimed, 200)
            body = claimed.json()
            task_id, token = body["task"]["task_id"], body["lease_token"]
            lease = json.dumps({"lease_token": token}).encode()
            expect_status(
                await env.http.request("POST", f"/tasks/{task_id}/heartbeat", lease, json_headers), 200
            )
            report = json.dumps(
                {"lease_token": token, "status": "succeeded", "result": {"seq": seq}}
            ).encode()
            expect_status(
                await env.http.request("POST", f"/tasks/{task_id}/report", report, json_headers), 200
            )
            return Done(items=1, acks=(str(task_id),))

        yield call


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
        verify_acks_stored(bench, acked, "completed task")
        done = stored_values(bench.db_path, "SELECT id FROM tasks WHERE status = 'succeeded'")
        missing = set(acked) - set(done)
        bench.result.checks.append(
            Check(
                "every reported task is succeeded in the store", not missing, f"{len(missing)} not succeeded"
            )
        )
        errors_check(bench.result)
        row = bench.result.row(NODE, "worker cycle")
        if row is not None:
            bench.result.targets.append(
                TargetCheck(f"full cycle tasks/s with {WORKERS} HTTP workers", row.items_ps, ">=", 600, "/s")
            )
    return bench.result
