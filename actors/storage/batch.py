"""One group-commit batch: the part that runs in the writer thread.

BEGIN IMMEDIATE; for each op: SAVEPOINT; op(tx); RELEASE (or ROLLBACK TO and record the op's exception);
COMMIT. Only events of ops that were released are reported. If anything beyond a single op fails (BEGIN,
COMMIT, a lost transaction), the whole batch is rolled back and every op gets that error.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from .errors import TransactionLostError
from .events import StoredEvent, Tx
from .sqlite import rollback_quietly

_SAVEPOINT = "orch_op"


@dataclass(eq=False, slots=True)
class PendingOp:
    """A queued write op and, once its batch ran, its result (set by the writer thread while taken)."""

    op: Callable[[Tx], Any]
    done: trio.Event = field(default_factory=trio.Event)
    taken: bool = False
    withdrawn: bool = False
    value: Any = None
    error: BaseException | None = None


@dataclass(slots=True)
class BatchResult:
    """What the writer thread reports back for one batch."""

    events: list[StoredEvent] = field(default_factory=list)
    failed_ops: int = 0
    error: BaseException | None = None
    duration: float = 0.0


def run_batch(conn: sqlite3.Connection, batch: Sequence[PendingOp]) -> BatchResult:
    """Run ``batch`` as one transaction; per-op results land in the `PendingOp`s. Never raises."""
    started = time.perf_counter()
    result = BatchResult()
    try:
        conn.execute("BEGIN IMMEDIATE")
        for pending in batch:
            _run_op(conn, pending, result)
        conn.execute("COMMIT")
    except BaseException as exc:
        rollback_quietly(conn)
        result.error = exc
        result.events.clear()
    result.duration = time.perf_counter() - started
    return result


def _run_op(conn: sqlite3.Connection, pending: PendingOp, result: BatchResult) -> None:
    tx = Tx(conn)
    conn.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        pending.value = pending.op(tx)
    except Exception as exc:
        tx._finish()
        pending.error = exc
        result.failed_ops += 1
        _check_transaction(conn, exc)
        conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
        conn.execute(f"RELEASE {_SAVEPOINT}")
        return
    events = tx._finish()
    _check_transaction(conn, None)
    conn.execute(f"RELEASE {_SAVEPOINT}")
    result.events.extend(events)


def _check_transaction(conn: sqlite3.Connection, cause: BaseException | None) -> None:
    if not conn.in_transaction:
        raise TransactionLostError(
            "a write op ended the batch transaction (conn.commit()/rollback() or a hard SQLite error); "
            "no op of the batch is acknowledged"
        ) from cause
