"""Crash test: SIGKILL a dispatcher under load; every acknowledged task and status change survives."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections import defaultdict
from functools import partial
from pathlib import Path

import pytest
import trio

from actors.dispatcher.lifecycle import EVENT_TYPES
from actors.dispatcher.messages import ListEvents, TaskStatus

from .harness import running_dispatcher

CHILD = Path(__file__).with_name("crash_child.py")
FINAL = {TaskStatus.SUCCEEDED.value, TaskStatus.DEAD.value}


async def run_child_until(db_path: Path, dispatches: int, changes: int) -> list[str]:
    """Start the child, read its acknowledgements until enough arrived, SIGKILL it mid-flight."""
    lines: list[str] = []
    proc = await trio.lowlevel.open_process(
        [sys.executable, str(CHILD), str(db_path)], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    buffer = b""
    try:
        with trio.fail_after(60):
            while (
                sum(x.startswith("D") for x in lines) < dispatches
                or sum(x.startswith("S") for x in lines) < changes
            ):
                chunk = await proc.stdout.receive_some(65536)
                assert chunk, "the child exited early"
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                lines.extend(c.decode() for c in complete)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return lines  # a torn last line stays in `buffer` and is not counted


@pytest.mark.integration
async def test_every_acknowledged_task_and_status_change_survives_sigkill(db_path: Path) -> None:
    lines = await run_child_until(db_path, dispatches=1500, changes=1000)
    acked_tasks = {key: task_id for kind, key, task_id in (x.split() for x in lines) if kind == "D"}
    acked_changes: dict[str, set[str]] = defaultdict(set)
    for kind, task_id, status in (x.split() for x in lines):
        if kind == "S":
            acked_changes[task_id].add(status)

    with sqlite3.connect(db_path) as conn:  # exactly once: one row per acknowledged key, with that id
        rows = dict(conn.execute("SELECT idempotency_key, id FROM tasks WHERE idempotency_key IS NOT NULL"))
        counts = dict(conn.execute("SELECT idempotency_key, count(*) FROM tasks GROUP BY idempotency_key"))
    for key, task_id in acked_tasks.items():
        assert rows.get(key) == task_id
        assert counts[key] == 1

    async with running_dispatcher(db_path) as d:  # the restarted dispatcher sees all of it
        events = await d.ref.ask(lambda r: ListEvents(r, limit=10_000))
        more = events
        while len(more) == 10_000:
            more = await d.ref.ask(partial(ListEvents, after_seq=more[-1].seq, limit=10_000))
            events += more
        types_of: dict[str, set[str]] = defaultdict(set)
        for e in events:
            assert e.subject is not None
            types_of[e.subject].add(e.type)
        for task_id in acked_tasks.values():
            assert "task.queued" in types_of[task_id]
        for task_id, statuses in acked_changes.items():
            for status in statuses:
                assert EVENT_TYPES[TaskStatus(status)] in types_of[task_id], (task_id, status)
            final = statuses & FINAL
            if final:
                assert (await d.get(task_id)).status.value in final
    assert len(acked_changes) > 100
