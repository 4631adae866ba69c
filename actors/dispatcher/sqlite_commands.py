"""`execute`: many client commands in one write op (the actor coalesces concurrent requests).

Invariant that makes this safe without a SAVEPOINT per command: every op refuses (raises its domain error)
before its first write or event, so a refused command leaves nothing behind. `execute` checks it with the
connection's change counter and fails the whole batch if an op ever broke it.
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
from .sqlite_ops import Rules
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


def execute(
    tx: Tx, rules: Rules, commands: Sequence[Command], now: float
) -> list[Outcome[Any] | DispatcherError]:
    """Apply ``commands`` in order; a refused one yields its error in its place."""
    results: list[Outcome[Any] | DispatcherError] = []
    for command in commands:
        before = tx.conn.total_changes
        try:
            results.append(_run(tx, rules, command, now))
        except DispatcherError as error:
            if tx.conn.total_changes != before:
                raise RuntimeError(f"{type(command).__name__} wrote before refusing: {error}") from error
            results.append(error)
    return results


def _run(tx: Tx, rules: Rules, command: Command, now: float) -> Outcome[Any]:
    match command:
        case DispatchCmd(specs=specs, metadata_json=metadata):
            return sqlite_dispatch.dispatch(tx, rules, specs, metadata, now)
        case HeartbeatCmd(task_id=task_id, lease_token=token, lease_s=lease_s, progress=progress):
            return ops.heartbeat(tx, task_id, token, lease_s, progress, now)
        case ReportCmd(task_id=task_id, lease_token=token, status=status, result=result, error=error):
            return reports.report(tx, rules, task_id, token, status, result, error, command.progress, now)
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
