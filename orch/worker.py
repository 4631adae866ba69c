"""`orch worker --core WORK_AI_01 -- COMMAND...`: a real worker for one core.

Loop: long-poll `POST /cores/{core}/claim`; for each task, report `running`, run COMMAND with the task in
its environment (ORCH_TASK_ID, ORCH_CORE_ID, ORCH_ATTEMPT, ORCH_WORKER_ID, ORCH_META_<KEY>) and as JSON on
its stdin, heartbeat every `--heartbeat` seconds while it runs, and report the outcome: exit code 0 ->
succeeded (result: exit code, duration, stdout/stderr tails), anything else -> failed (error: exit code or
signal, stderr tail). The command runs in its own process group, so stopping it reaches its children.

- Cancellation: a heartbeat answering `cancel_requested` terminates the command (SIGTERM, SIGKILL after
  5 s) and reports `cancelled`. A heartbeat answering 404/409 means the task was taken away (lease lapsed,
  timed out): the command is stopped and nothing is reported.
- SIGTERM/SIGINT: stop claiming; let the running command finish within `--grace` seconds, then stop it and
  hand the task back (`POST /tasks/{id}/release`): it is queued again for another worker WITHOUT spending
  an attempt (the worker's shutdown is not the task's failure). A second signal stops at once.
- The node unreachable or answering 5xx/429: retry with exponential backoff and jitter (0.5 s .. 30 s);
  a command keeps running meanwhile, and its report is retried for up to `report_patience` seconds.
- Refused credentials (401/403) or a bad request (422) end the worker with exit status 2.
- `--concurrency N`: up to N commands at once, each task with its own heartbeats and report; free slots
  are filled by one claim for several tasks (`POST /cores/{core}/claims` with `max`), so a worker that
  runs many short tasks needs fewer round trips. On SIGTERM every running command gets the grace.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from orch.cli_client import auth_headers, problem_text
from orch.worker_process import ProcessResult, TaskProcess, task_env

__all__ = ["Worker", "WorkerRefused", "WorkerSettings", "default_worker_id"]

_log = logging.getLogger("orch.worker")

ERROR_TAIL = 2000  # characters of stderr carried in a failure's error text


def default_worker_id() -> str:
    """`<hostname>-<pid>`."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """What a worker needs; `heartbeat` None = a third of the lease (at most 10 s); `concurrency`: commands
    run at once (each task claimed, heart-beaten and reported on its own)."""

    url: str
    core: str
    command: tuple[str, ...]
    token: str | None = None
    worker_id: str = field(default_factory=default_worker_id)
    lease: float = 30.0
    heartbeat: float | None = None
    claim_wait: float = 30.0
    max_tasks: int | None = None
    concurrency: int = 1
    grace: float = 30.0
    tail_bytes: int = 4096
    echo: bool = True
    kill_grace: float = 5.0
    backoff_min: float = 0.5
    backoff_max: float = 30.0
    report_patience: float = 300.0

    @property
    def heartbeat_every(self) -> float:
        """Seconds between heartbeats."""
        return self.heartbeat if self.heartbeat is not None else max(0.05, min(self.lease / 3, 10.0))


class WorkerRefused(Exception):
    """The node refused the worker itself (credentials, role, bad request): retrying will not help."""


class _Backoff:
    def __init__(self, low: float, high: float) -> None:
        self.low, self.high, self.next = low, high, low

    def delay(self) -> float:
        value = self.next * (0.5 + random.random() / 2)  # jitter: never all workers at once
        self.next = min(self.high, self.next * 2)
        return value

    def reset(self) -> None:
        self.next = self.low


class Worker:
    """One worker process's loop (see the module docstring). `stop()` is safe to call from a signal loop."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.completed: dict[str, int] = {}
        self._stopping = trio.Event()
        self._claim_scope: trio.CancelScope | None = None
        self._current: dict[int, TaskProcess] = {}  # by id(): running commands
        self._nursery: trio.Nursery | None = None
        self._backoff = _Backoff(settings.backoff_min, settings.backoff_max)
        self._started = 0
        self._running = 0
        self._slot_freed = trio.Event()

    @property
    def done(self) -> int:
        """Tasks this worker has finished with (any outcome)."""
        return sum(self.completed.values())

    def stop(self) -> None:
        """First call: stop claiming, give the running command `grace` seconds. Second: stop it now."""
        first = not self._stopping.is_set()
        self._stopping.set()
        if self._claim_scope is not None:
            self._claim_scope.cancel()
        nursery = self._nursery
        if nursery is not None:
            delay = self.settings.grace if first else 0.0
            for process in list(self._current.values()):
                nursery.start_soon(self._stop_after, process, delay)

    async def _stop_after(self, process: TaskProcess, delay: float) -> None:
        await trio.sleep(delay)
        await process.terminate("shutdown")

    async def run(self) -> None:
        """Claim and run tasks until stopped or `max_tasks` are done; raises `WorkerRefused`."""
        s = self.settings
        timeout = httpx.Timeout(15.0, read=s.claim_wait + 15.0)
        async with (
            httpx.AsyncClient(base_url=s.url, headers=auth_headers(s.token), timeout=timeout) as http,
            trio.open_nursery() as nursery,
        ):
            self._nursery = nursery
            _log.info("worker %s claiming for %s at %s", s.worker_id, s.core, s.url)
            refused: WorkerRefused | None = None
            async with trio.open_nursery() as tasks:
                while not self._stopping.is_set() and (want := await self._free_slots()):
                    try:
                        claimed = await self._claim(http, want)
                    except WorkerRefused as exc:  # caught here, not raised as an ExceptionGroup
                        refused = exc
                        break
                    for one in claimed:
                        self._started += 1
                        self._running += 1
                        tasks.start_soon(self._run_slot, http, one)
            nursery.cancel_scope.cancel()
        if refused is not None:
            raise refused
        _log.info("worker %s stopped after %d task(s)", s.worker_id, self.done)

    # --- claiming -----------------------------------------------------------------------------------------
    async def _free_slots(self) -> int:
        """Wait for a free slot; how many tasks to claim now (0: `max_tasks` are all started)."""
        s = self.settings
        while self._running >= s.concurrency:
            self._slot_freed = trio.Event()
            await self._slot_freed.wait()
        free = s.concurrency - self._running
        return free if s.max_tasks is None else min(free, s.max_tasks - self._started)

    async def _run_slot(self, http: httpx.AsyncClient, claimed: dict[str, Any]) -> None:
        try:
            await self._run_task(http, claimed)
        finally:
            self._running -= 1
            self._slot_freed.set()

    async def _claim(self, http: httpx.AsyncClient, want: int) -> list[dict[str, Any]]:
        """Claim up to `want` tasks (one: `POST .../claim`; more: `POST .../claims` with `max`)."""
        s = self.settings
        body: dict[str, Any] = {"worker_id": s.worker_id, "lease": s.lease, "wait": s.claim_wait}
        path = f"/cores/{s.core}/claim"
        if want > 1:
            body["max"] = want
            path += "s"
        response: httpx.Response | None = None
        with trio.CancelScope() as scope:
            self._claim_scope = scope
            if self._stopping.is_set():
                scope.cancel()
            try:
                response = await http.post(path, json=body)
            except httpx.TransportError as exc:
                _log.warning("node unreachable (%s); retrying", type(exc).__name__)
        self._claim_scope = None
        if response is None:
            if not scope.cancelled_caught:
                await self._pause()
            return []
        if response.status_code in (200, 204):
            self._backoff.reset()
            if response.status_code == 204:
                return []
            answer: dict[str, Any] = response.json()
            return list(answer["claims"]) if want > 1 else [answer]
        if response.status_code in (400, 401, 403, 404, 405, 413, 415, 422):
            raise WorkerRefused(problem_text(response))
        _log.warning("claim answered %s; retrying", problem_text(response))
        await self._pause(_retry_after(response))
        return []

    async def _pause(self, at_least: float = 0.0) -> None:
        """Back off (ending early if the worker is stopped)."""
        with trio.move_on_after(max(at_least, self._backoff.delay())):
            await self._stopping.wait()

    # --- running ------------------------------------------------------------------------------------------
    async def _run_task(self, http: httpx.AsyncClient, claimed: dict[str, Any]) -> None:
        s = self.settings
        task, token = claimed["task"], str(claimed["lease_token"])
        task_id = str(task["task_id"])
        _log.info("claimed %s (attempt %s)", task_id, task.get("attempts"))
        if not await self._report(http, task_id, token, {"status": "running"}):
            self._count("lost")
            return
        process = TaskProcess(
            command=s.command,
            env=task_env(task, s.worker_id, os.environ),
            stdin_data=_stdin_json(task),
            tail_bytes=s.tail_bytes,
            echo=s.echo,
            kill_grace=s.kill_grace,
        )
        self._current[id(process)] = process
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeats, http, task_id, token, process)
                if self._stopping.is_set():  # stopped while reporting running: still honour the grace
                    nursery.start_soon(self._stop_after, process, s.grace)
                result = await process.run()
                nursery.cancel_scope.cancel()
        finally:
            del self._current[id(process)]
        await self._finish(http, task_id, token, result)

    async def _heartbeats(
        self, http: httpx.AsyncClient, task_id: str, token: str, process: TaskProcess
    ) -> None:
        while True:
            await trio.sleep(self.settings.heartbeat_every)
            try:
                response = await http.post(f"/tasks/{task_id}/heartbeat", json={"lease_token": token})
            except httpx.TransportError as exc:
                _log.warning("heartbeat for %s failed (%s); the command keeps running", task_id, exc)
                continue
            if response.status_code == 200 and response.json().get("cancel_requested"):
                _log.info("cancel requested for %s: stopping the command", task_id)
                await process.terminate("cancel")
                return
            if response.status_code in (404, 409):
                _log.warning("lost %s (%s): stopping the command", task_id, problem_text(response))
                await process.terminate("lease-lost")
                return
            if response.status_code != 200:
                _log.warning("heartbeat for %s answered %s", task_id, problem_text(response))

    async def _finish(self, http: httpx.AsyncClient, task_id: str, token: str, result: ProcessResult) -> None:
        if result.stopped_by == "lease-lost":
            self._count("lost")
            return
        if result.stopped_by == "shutdown":
            released = await self._post(
                http,
                f"/tasks/{task_id}/release",
                {"lease_token": token, "reason": "worker stopped"},
                "release",
            )
            self._count("released" if released else "lost")
            _log.info("%s handed back (worker stopping, %.2f s)", task_id, result.duration_s)
            return
        if result.stopped_by == "cancel":
            body: dict[str, Any] = {"status": "cancelled", "error": "cancelled on request; command stopped"}
        elif result.returncode == 0:
            body = {"status": "succeeded", "result": _result_json(result)}
        else:
            body = {"status": "failed", "error": _error_text(result)}
        reported = await self._report(http, task_id, token, body)
        self._count(body["status"] if reported else "lost")
        _log.info("%s %s (exit %s, %.2f s)", task_id, body["status"], result.returncode, result.duration_s)

    async def _report(self, http: httpx.AsyncClient, task_id: str, token: str, body: dict[str, Any]) -> bool:
        """Report with retries (a repeat of the same report is harmless); False when the task is lost."""
        what = f"report {body['status']}"
        return await self._post(http, f"/tasks/{task_id}/report", {"lease_token": token, **body}, what)

    async def _post(self, http: httpx.AsyncClient, path: str, body: dict[str, Any], what: str) -> bool:
        """POST with retries on 5xx/429/unreachable for up to `report_patience`; False when refused."""
        deadline = time.monotonic() + self.settings.report_patience
        backoff = _Backoff(self.settings.backoff_min, self.settings.backoff_max)
        while True:
            try:
                response = await http.post(path, json=body)
            except httpx.TransportError as exc:
                response = None
                _log.warning("%s (%s) failed (%s); retrying", what, path, type(exc).__name__)
            if response is not None and response.status_code == 200:
                return True
            if response is not None and response.status_code < 500 and response.status_code != 429:
                _log.warning("%s (%s) refused: %s", what, path, problem_text(response))
                return False
            if time.monotonic() >= deadline:
                _log.error("gave up: %s (%s)", what, path)
                return False
            await trio.sleep(max(backoff.delay(), _retry_after(response)))

    def _count(self, outcome: str) -> None:
        self.completed[outcome] = self.completed.get(outcome, 0) + 1


def _retry_after(response: httpx.Response | None) -> float:
    if response is None:
        return 0.0
    try:
        return min(60.0, float(response.headers.get("Retry-After", "0")))
    except ValueError:
        return 0.0


def _stdin_json(task: dict[str, Any]) -> bytes:
    return json.dumps(task, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _result_json(result: ProcessResult) -> dict[str, Any]:
    return {
        "exit_code": result.returncode,
        "duration_s": round(result.duration_s, 3),
        "stdout": result.stdout.text(),
        "stderr": result.stderr.text(),
        "stdout_truncated": result.stdout.truncated,
        "stderr_truncated": result.stderr.truncated,
    }


def _error_text(result: ProcessResult) -> str:
    head = f"killed by {result.signal_name}" if result.signal_name else f"exit code {result.returncode}"
    tail = result.stderr.text()[-ERROR_TAIL:].strip()
    return f"{head}\n{tail}" if tail else head
