"""Task operations over `WS /ws/dispatch`, pipelined: dispatch (a window of requests in flight per
connection), and the full worker cycle (claim -> heartbeat -> report for a window of tasks at once).
Durability is checked as for HTTP: every acknowledged task is in the store after SIGTERM.

`ws-dispatch` sends `BENCH_WS_DISPATCH_BATCH` tasks per request (default 1: single `dispatch` ops; above 1:
`dispatch_batch`), `BENCH_WS_DISPATCH_WINDOW` requests in flight per socket (default 20; with batches of
1,000, 2 keeps a call about as long as an HTTP batch of 1,000 at 16 clients).

`ws-cycle` batches as high-throughput workers do (environment variables, read when the scenario starts):

* `BENCH_WS_CYCLE_MAX` (default 100): tasks per claim. Above 1 a worker sends one `claim` with `max` N,
  then one `heartbeat_batch` and one `report_batch` for the tasks it got; 1 = 10 single `claim`s in
  flight, then one `heartbeat` and one `report` per task.
* `BENCH_WS_CYCLE_DISPATCH` (default 20): tasks per dispatcher request (`dispatch_batch` above 1,
  `dispatch` at 1), 20 requests in flight per dispatcher.
* `BENCH_WS_CYCLE_BACKLOG` (default 4 x workers x claim max: 8,000): the dispatchers are paced by the
  workers (closed loop, see `bench.harness.pacing`): at most this many tasks dispatched and not yet
  completed, so the run measures the steady state instead of a queue that grows without bound; 0 = open
  loop (dispatch flat out).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import trio_websocket

from bench.harness.load import Call, ClientEnv, Done, Group, OpFailed
from bench.harness.pacing import Backlog, backlog
from bench.harness.report import Check, ScenarioResult, TargetCheck
from bench.harness.runner import NODE, Bench, Options
from bench.harness.verify import check_acks_stored, stored_values
from bench.scenarios.common import expect_status
from bench.scenarios.cycle import WORKERS, batch_setting, worker_group
from bench.scenarios.dispatch import CORES, task_body

__all__ = ["WsDispatch", "WsWorkerBatchCycle", "WsWorkerCycle", "run_cycle", "run_dispatch"]

Rpc = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]

CYCLE_BACKLOG = "ws-cycle"
BACKLOG_PATIENCE = 1.0  # s without a completed task after which waiting dispatchers go ahead (the run's end)


async def open_backlog(env: ClientEnv, limit: int) -> Backlog | None:
    """This load process's cycle backlog (None when not paced), seeded with what is unfinished on the
    node (the warm-up's and earlier runs' leftovers)."""
    if not limit:
        return None
    paced = backlog(CYCLE_BACKLOG, limit)
    await paced.seed_once(lambda: unfinished_on_node(env))
    return paced


async def unfinished_on_node(env: ClientEnv) -> int:
    """Tasks queued, held or waiting to retry on the node (`GET /queues`, summed over its cores)."""
    answer = await env.http.request("GET", "/queues")
    expect_status(answer, 200)
    cores = answer.json()["cores"]
    return sum(int(c["queued"]) + int(c["claimed"]) + int(c["running"]) + int(c["retrying"]) for c in cores)


@asynccontextmanager
async def open_rpc(env: ClientEnv, path: str = "/ws/dispatch") -> AsyncIterator[Rpc]:
    """A websocket to `path` (authenticated by the plan's Authorization header) and `rpc(requests)`:
    send them all (pipelined), then wait for every answer (matched by `id`, any order)."""
    url = env.base_url.replace("http://", "ws://", 1) + path
    headers = [
        (k.lower().encode(), v.encode()) for k, v in env.headers.items() if k.lower() == "authorization"
    ]
    ids = itertools.count(1)
    async with trio_websocket.open_websocket_url(url, extra_headers=headers) as ws:

        async def rpc(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
            wanted = []
            for request in requests:
                request["id"] = next(ids)
                wanted.append(request["id"])
                await ws.send_message(json.dumps(request))
            answers: dict[int, dict[str, Any]] = {}
            pending = set(wanted)
            while pending:
                message = json.loads(await ws.get_message())
                if message.get("id") in pending:
                    pending.discard(message["id"])
                    answers[message["id"]] = message
            return [answers[i] for i in wanted]

        yield rpc


def _results(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for answer in answers:
        if not answer.get("ok"):
            error = answer.get("error") or {}
            raise OpFailed(f"ws {error.get('status', '?')}", str(error.get("detail", answer))[:300])
    return [a["result"] for a in answers]


@dataclass(frozen=True, slots=True)
class WsDispatch:
    """Per call: `window` dispatch requests in flight on the client's socket (each of `batch` tasks,
    `dispatch_batch` when > 1); acks every task id. With `backlog` > 0 each call first waits for room in
    the process's cycle backlog (workers give it back as they complete tasks)."""

    window: int = 20
    batch: int = 1
    backlog: int = 0

    @asynccontextmanager
    async def open(self, env: ClientEnv) -> AsyncIterator[Call]:
        """One socket per client."""
        paced = await open_backlog(env, self.backlog)
        async with open_rpc(env) as rpc:

            async def send(seq: int) -> Done:
                first = seq * self.window * self.batch
                if self.batch == 1:
                    requests = [{"op": "dispatch", **task_body(first + i)} for i in range(self.window)]
                else:
                    requests = [
                        {
                            "op": "dispatch_batch",
                            "tasks": [task_body(first + i * self.batch + j) for j in range(self.batch)],
                        }
                        for i in range(self.window)
                    ]
                results = _results(await rpc(requests))
                ids = [
                    str(t["task_id"])
                    for r in results
                    for t in (r.get("tasks", [r]) if self.batch > 1 else [r])
                ]
                return Done(items=len(ids), acks=tuple(ids))

            async def call(seq: int) -> Done:
                if paced is None:
                    return await send(seq)
                tasks = self.window * self.batch
                await paced.reserve(tasks, patience=BACKLOG_PATIENCE)
                try:
                    return await send(seq)
                except BaseException:
                    paced.release(tasks)
                    raise

            yield call


@dataclass(frozen=True, slots=True)
class WsWorkerCycle:
    """Per call: `window` claims in flight on the worker's socket, then heartbeats and succeeded reports
    for the tasks it got (pipelined); acks the completed task ids."""

    window: int = 10
    cores: int = CORES
    lease: float = 30.0
    wait: float = 1.0
    backlog: int = 0

    @asynccontextmanager
    async def open(self, env: ClientEnv) -> AsyncIterator[Call]:
        """One socket per worker; workers spread evenly over the cores."""
        core = f"BENCH_{env.client_id % self.cores:02d}"
        paced = await open_backlog(env, self.backlog)
        claim = {
            "op": "claim",
            "core_id": core,
            "worker_id": f"ws-w{env.client_id}",
            "lease": self.lease,
            "wait": self.wait,
        }
        async with open_rpc(env) as rpc:

            async def call(seq: int) -> Done:
                claimed = [r for r in _results(await rpc([dict(claim) for _ in range(self.window)])) if r]
                held = [(c["task"]["task_id"], c["lease_token"]) for c in claimed]
                if not held:
                    return Done(items=0)
                _results(await rpc([{"op": "heartbeat", "task_id": t, "lease_token": k} for t, k in held]))
                done = {"status": "succeeded", "result": {"seq": seq}}
                reports = [{"op": "report", "task_id": t, "lease_token": k, **done} for t, k in held]
                _results(await rpc(reports))
                if paced is not None:
                    paced.release(len(held))
                return Done(items=len(held), acks=tuple(str(t) for t, _ in held))

            yield call


@dataclass(frozen=True, slots=True)
class WsWorkerBatchCycle:
    """Per call: one `claim` with `max` (long-poll), then one `heartbeat_batch` and one `report_batch`
    (succeeded) for the tasks it got; every item must answer ok; acks the completed task ids."""

    max: int = 50
    cores: int = CORES
    lease: float = 30.0
    wait: float = 1.0
    backlog: int = 0

    @asynccontextmanager
    async def open(self, env: ClientEnv) -> AsyncIterator[Call]:
        """One socket per worker; workers spread evenly over the cores."""
        core = f"BENCH_{env.client_id % self.cores:02d}"
        paced = await open_backlog(env, self.backlog)
        claim = {"op": "claim", "core_id": core, "worker_id": f"ws-w{env.client_id}", "max": self.max}
        claim.update(lease=self.lease, wait=self.wait)
        async with open_rpc(env) as rpc:

            async def call(seq: int) -> Done:
                (claimed,) = _results(await rpc([dict(claim)]))
                held = [(c["task"]["task_id"], c["lease_token"]) for c in claimed["claims"]]
                if not held:
                    return Done(items=0)
                beats = [{"task_id": t, "lease_token": k} for t, k in held]
                _items_ok(await rpc([{"op": "heartbeat_batch", "heartbeats": beats}]), "heartbeat")
                done = {"status": "succeeded", "result": {"seq": seq}}
                reports = [{"task_id": t, "lease_token": k, **done} for t, k in held]
                for item in _items_ok(await rpc([{"op": "report_batch", "reports": reports}]), "report"):
                    if item["task"]["status"] != "succeeded":
                        raise OpFailed("report not applied", str(item)[:300])
                if paced is not None:
                    paced.release(len(held))
                return Done(items=len(held), acks=tuple(str(t) for t, _ in held))

            yield call


def _items_ok(answers: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
    (result,) = _results(answers)
    items: list[dict[str, Any]] = result["results"]
    for item in items:
        if not item.get("ok"):
            error = item.get("error") or {}
            raise OpFailed(f"ws {what} item {error.get('status', '?')}", str(error.get("detail"))[:300])
    return items


def _node_only(bench: Bench) -> bool:
    if bench.has_route("/ws/dispatch"):
        return True
    bench.skip("node WS /ws/dispatch: not served yet")
    return False


def run_dispatch(options: Options) -> ScenarioResult:
    """`python -m bench ws-dispatch`: node only (the baseline has no dispatch semantics to compare)."""
    with Bench("ws-dispatch", replace(options, baseline=False)) as bench:
        if not _node_only(bench):
            return bench.result
        node = next(t for t in bench.targets() if t.name == NODE)
        d = batch_setting("BENCH_WS_DISPATCH_BATCH", 1)
        w = batch_setting("BENCH_WS_DISPATCH_WINDOW", 20)
        group = f"ws dispatch x{w}" if d == 1 else f"ws dispatch_batch x{w} of {d}"
        acked: list[str] = []
        for clients in options.clients:
            for run in range(options.runs):
                groups = [Group(group, WsDispatch(window=w, batch=d), clients, headers=bench.auth_headers())]
                load, _ = bench.measure(node, groups, run=run)
                acked += load.groups[group].acks
        bench.stop_node()
        stored = stored_values(bench.db_path, "SELECT id FROM tasks")
        bench.result.checks.append(
            check_acks_stored("every acknowledged task is in the store", acked, stored)
        )
        _finish(bench, [(group, "websocket dispatch tasks/s (durable)")], 15_000)
    return bench.result


def run_cycle(options: Options) -> ScenarioResult:
    """`python -m bench ws-cycle`: HTTP-free full cycle: ws dispatchers + WORKERS ws workers."""
    with Bench("ws-cycle", replace(options, baseline=False)) as bench:
        if not _node_only(bench):
            return bench.result
        node = next(t for t in bench.targets() if t.name == NODE)
        n = batch_setting("BENCH_WS_CYCLE_MAX", 100)
        d = batch_setting("BENCH_WS_CYCLE_DISPATCH", 20)
        limit = _cycle_backlog(bench, options, default=4 * WORKERS * n)
        worker: WsWorkerCycle | WsWorkerBatchCycle = (
            WsWorkerCycle(backlog=limit) if n == 1 else WsWorkerBatchCycle(max=n, backlog=limit)
        )
        dispatcher = WsDispatch(batch=d, backlog=limit)
        acked: list[str] = []
        for clients in options.clients:
            workers = worker_group("ws worker cycle", clients)
            for run in range(options.runs):
                groups = [
                    Group("ws dispatch x20", dispatcher, clients, headers=bench.auth_headers()),
                    Group(workers, worker, WORKERS, headers=bench.system_headers()),
                ]
                load, _ = bench.measure(node, groups, run=run)
                acked += load.groups[workers].acks
        bench.stop_node()
        done = stored_values(bench.db_path, "SELECT id FROM tasks WHERE status = 'succeeded'")
        bench.result.checks.append(
            check_acks_stored("every reported task is succeeded in the store", acked, done)
        )
        _finish(
            bench,
            [
                (
                    worker_group("ws worker cycle", clients),
                    f"full cycle tasks/s with {WORKERS} websocket workers, {clients} dispatchers"
                    f" (claim max {n}, dispatch {d}/request)",
                )
                for clients in options.clients
            ],
            3_000,
        )
    return bench.result


def _cycle_backlog(bench: Bench, options: Options, *, default: int) -> int:
    """`BENCH_WS_CYCLE_BACKLOG` (0: open loop); pacing needs dispatchers and workers in one process."""
    limit = batch_setting("BENCH_WS_CYCLE_BACKLOG", default, minimum=0)
    if limit and options.processes > 1:
        bench.result.notes.append("open loop: backlog pacing needs --processes 1")
        return 0
    bench.result.notes.append(
        f"dispatchers paced by the workers: at most {limit:,} tasks dispatched and not completed"
        if limit
        else "open loop: dispatchers not paced (BENCH_WS_CYCLE_BACKLOG=0)"
    )
    return limit


def _finish(bench: Bench, targets: list[tuple[str, str]], threshold: float) -> None:
    """The error check, then one target check per ``(group, target text)``."""
    errors = sum(m.errors for m in bench.result.runs)
    bench.result.checks.append(Check("no failed requests", errors == 0, f"{errors} errors in all runs"))
    bench.result.finish()
    for group, target in targets:
        row = bench.result.row(NODE, group)
        if row is not None:
            bench.result.targets.append(TargetCheck(target, row.items_ps, ">=", threshold, "/s"))
