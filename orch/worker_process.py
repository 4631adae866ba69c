"""Running one task's command for `orch worker`: environment, JSON on stdin, bounded output tails, and
stopping the whole process group (the command may have children of its own).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TextIO

import trio

__all__ = ["ProcessResult", "Tail", "TaskProcess", "task_env"]

_KEY = re.compile(r"[^A-Z0-9_]")


def task_env(task: Mapping[str, Any], worker_id: str, base: Mapping[str, str]) -> dict[str, str]:
    """`base` plus ORCH_TASK_ID, ORCH_CORE_ID, ORCH_ATTEMPT, ORCH_WORKER_ID and ORCH_META_<KEY> per metadata
    member (key upper-cased, other characters -> `_`; non-string values as JSON)."""
    env = dict(base)
    env["ORCH_TASK_ID"] = str(task["task_id"])
    env["ORCH_CORE_ID"] = str(task["core_id"])
    env["ORCH_ATTEMPT"] = str(task.get("attempts", 1))
    env["ORCH_WORKER_ID"] = worker_id
    for key, value in (task.get("metadata") or {}).items():
        name = "ORCH_META_" + _KEY.sub("_", str(key).upper())
        env[name] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return env


class Tail:
    """The last `limit` bytes written to it (and whether anything was dropped)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._data = bytearray()
        self.truncated = False

    def write(self, chunk: bytes | bytearray) -> None:
        self._data += chunk
        if len(self._data) > self.limit:
            del self._data[: len(self._data) - self.limit]
            self.truncated = True

    def text(self) -> str:
        """The tail as text (undecodable bytes replaced; a cut multi-byte character too)."""
        return self._data.decode("utf-8", errors="replace")


@dataclass(slots=True)
class ProcessResult:
    """How the command ended. `returncode` < 0: killed by that signal."""

    returncode: int
    duration_s: float
    stdout: Tail
    stderr: Tail
    stopped_by: str | None = None  # "cancel", "lease-lost", "shutdown": we terminated it

    @property
    def signal_name(self) -> str | None:
        """`SIGKILL` etc. when a signal ended it."""
        if self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"


@dataclass(slots=True)
class TaskProcess:
    """One run of the command. `start`, then `wait`; `terminate` stops its process group (TERM, then KILL)."""

    command: Sequence[str]
    env: Mapping[str, str]
    stdin_data: bytes
    tail_bytes: int = 4096
    echo: bool = True
    kill_grace: float = 5.0
    process: trio.Process | None = None
    stopped_by: str | None = None
    drain_s: float = 2.0
    _started: float = field(default=0.0)

    async def run(self) -> ProcessResult:
        """Start the command, feed stdin, collect output, and return when it has exited."""
        stdout, stderr = Tail(self.tail_bytes), Tail(self.tail_bytes)
        self._started = time.monotonic()
        try:
            self.process = process = await trio.lowlevel.open_process(
                list(self.command),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(self.env),
                start_new_session=True,  # its own process group: terminate() reaches its children too
            )
        except OSError as exc:  # not found, not executable: a failed attempt, like the shell's 127
            stderr.write(f"cannot start {self.command[0]!r}: {exc.strerror or exc}\n".encode())
            return ProcessResult(127, time.monotonic() - self._started, stdout, stderr, None)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._feed, process)
                nursery.start_soon(self._pump, process.stdout, stdout, sys.stdout)
                nursery.start_soon(self._pump, process.stderr, stderr, sys.stderr)
                await process.wait()
                # A grandchild may keep the pipes open: give the readers a moment, not forever.
                nursery.cancel_scope.deadline = trio.current_time() + self.drain_s
        finally:
            if process.returncode is None:  # we are being cancelled: never leave the command behind
                with trio.CancelScope(shield=True):
                    await self._stop_group(process)
        duration = time.monotonic() - self._started
        return ProcessResult(process.returncode or 0, duration, stdout, stderr, self.stopped_by)

    async def terminate(self, reason: str) -> None:
        """Stop the command's process group: SIGTERM, then SIGKILL after `kill_grace` seconds."""
        if self.stopped_by is None:
            self.stopped_by = reason
        if self.process is not None and self.process.returncode is None:
            await self._stop_group(self.process)

    async def _stop_group(self, process: trio.Process) -> None:
        _signal_group(process.pid, signal.SIGTERM)
        with trio.move_on_after(self.kill_grace):
            await process.wait()
            return
        _signal_group(process.pid, signal.SIGKILL)
        await process.wait()

    async def _feed(self, process: trio.Process) -> None:
        if process.stdin is None:
            return
        try:
            async with process.stdin:
                await process.stdin.send_all(self.stdin_data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the command does not read its stdin: fine

    async def _pump(self, stream: trio.abc.ReceiveStream | None, tail: Tail, echo_to: TextIO) -> None:
        if stream is None:
            return
        binary: BinaryIO | None = getattr(echo_to, "buffer", None) if self.echo else None
        async with stream:
            while chunk := await stream.receive_some(65536):
                tail.write(chunk)
                if binary is not None:
                    binary.write(chunk)
                    binary.flush()


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pid, signum)
