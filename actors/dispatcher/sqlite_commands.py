"""`execute`: many client commands in one write op (the actor coalesces concurrent requests).

Invariant that makes this safe without a SAVEPOINT per command: every op refuses (raises its domain error)
before its first write or event, so a refused command leaves nothing behind. `execute` checks it with the
connection's change counter and fails the whole batch if an op ever broke it.

Holders' messages (heartbeats and reports, the bulk of a worker's traffic) run in *runs*: consecutive ones
on distinct tasks read their rows in one SELECT and write in one ``executemany`` per statement shape plus one
`Tx.emit_run` (`Writes`). Each item is still checked on its own against its row as read; its events are
kept by a deferred `Step` and its UPDATE is queued only once it succeeded, so a refused item leaves nothing
behind and yields its error in its place. Events keep the item order (consecutive seqs); the row of a task
named twice is re-read by starting a new run at the repeat.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, assert_never

from actors.storage import Tx

from . import sqlite_dispatch
from . import sqlite_ops as ops
from . import sqlite_reports as reports
from . import sqlite_status as status_ops
from .messages import DispatcherError
from .rows import COLUMNS, LEASE_COLUMNS, select_ids
from .sqlite_ops import Rules, Step, Writes
from .store import (
    CancelCmd,
    Command,
    DispatchCmd,
    HeartbeatCmd,
    Outcome,
    ReleaseCmd,
    ReportCmd,
    RequeueCmd,
    SetStatusCmd,
)

HolderCmd = HeartbeatCmd | ReportCmd
_HOLDER_TYPES = (HeartbeatCmd, ReportCmd)  # a tuple: ``A | B`` in the loop built a union per command
OtherCmd = DispatchCmd | CancelCmd | RequeueCmd | SetStatusCmd | ReleaseCmd
Result = Outcome[Any] | DispatcherError


def execute(tx: Tx, rules: Rules, commands: Sequence[Command], now: float) -> list[Result]:
    """Apply ``commands`` in order; a refused one yields its error in its place."""
    results: list[Result] = []
    run: list[HolderCmd] = []
    ids: set[str] = set()
    for command in commands:
        if isinstance(command, _HOLDER_TYPES):
            if command.task_id in ids:  # a task named again: its row must be read after the run's writes
                results += _run_holders(tx, rules, run, now)
                run, ids = [], set()
            run.append(command)
            ids.add(command.task_id)
            continue
        if run:
            results += _run_holders(tx, rules, run, now)
            run, ids = [], set()
        results.append(_run_checked(tx, rules, command, now))
    if run:
        results += _run_holders(tx, rules, run, now)
    return results


def _run_holders(tx: Tx, rules: Rules, run: Sequence[HolderCmd], now: float) -> list[Result]:
    # A run of plain heartbeats (the bulk of them) reads only the lease columns.
    narrow = all(type(command) is HeartbeatCmd and command.progress is None for command in run)
    found = select_ids(tx.conn, [command.task_id for command in run], LEASE_COLUMNS if narrow else COLUMNS)
    writes = Writes()
    results: list[Result] = []
    for command in run:
        step = Step(tx, now, deferred=True)
        try:
            match command:
                case HeartbeatCmd():
                    row = found.get(command.task_id)
                    results.append(ops.heartbeat(step, writes, row, command, narrow=narrow))
                case ReportCmd():
                    results.append(reports.report(step, writes, rules, found.get(command.task_id), command))
                case _:
                    assert_never(command)
        except DispatcherError as error:
            results.append(error)
        else:
            writes.take(step)
    writes.flush(tx)
    return results


def _run_checked(tx: Tx, rules: Rules, command: OtherCmd, now: float) -> Result:
    before = tx.conn.total_changes
    try:
        return _run(tx, rules, command, now)
    except DispatcherError as error:
        if tx.conn.total_changes != before:
            raise RuntimeError(f"{type(command).__name__} wrote before refusing: {error}") from error
        return error


def _run(tx: Tx, rules: Rules, command: OtherCmd, now: float) -> Outcome[Any]:
    match command:
        case DispatchCmd(specs=specs, metadata_json=metadata):
            return sqlite_dispatch.dispatch(tx, rules, specs, metadata, now)
        case CancelCmd(task_id=task_id, reason=reason):
            return reports.cancel(tx, task_id, reason, now)
        case RequeueCmd(task_id=task_id, reset_attempts=reset):
            return reports.requeue(tx, rules, task_id, reset, now)
        case SetStatusCmd():
            return status_ops.set_status(tx, rules, command, now)
        case ReleaseCmd(task_id=task_id, lease_token=token, reason=reason):
            return status_ops.hand_back(tx, task_id, token, reason, now)
        case _:
            assert_never(command)
