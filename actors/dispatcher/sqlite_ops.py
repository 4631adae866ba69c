"""The SQLite store's write ops: plain functions of a `Tx`, run in the storage layer's writer thread.

Each op is one atomic step inside its own SAVEPOINT of a group-commit batch: a domain error it raises rolls
back only that op. Every status change goes through `Step.move`, which checks the lifecycle table, updates
the row copy, emits the event and records the `Change` for the actor.
"""

from __future__ import annotations

import hmac
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from actors.storage import Tx

from .ids import new_lease_token
from .lifecycle import EVENT_TYPES, FINISHED, HELD, check_transition
from .messages import (
    ClaimedTask,
    HeartbeatAck,
    StaleLease,
    TaskNotFound,
    TaskStatus,
)
from .policy import AgingRule, RetryPolicy
from .rows import TaskRow, select_many, select_one
from .store import Change, ClaimRequest, Outcome

S = TaskStatus
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Rules:
    """The policies ops apply: aging (rank), retry backoff, idempotency window."""

    aging: AgingRule = field(default_factory=AgingRule)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    idempotency_window_s: float = 7 * 86_400.0
    rng: random.Random = field(default_factory=random.Random)


class Step:
    """Collects the status changes (and their events) of one op."""

    __slots__ = ("changes", "now", "tx")

    def __init__(self, tx: Tx, now: float) -> None:
        self.tx = tx
        self.now = now
        self.changes: list[Change] = []

    def move(self, row: TaskRow, target: TaskStatus, data: Mapping[str, Any]) -> None:
        """Check and apply ``row.status -> target`` on the row copy, emit its event, record the change."""
        check_transition(row.id, row.status, target)
        self.changes.append(Change(row.core_id, row.priority, row.status, target, row.not_before))
        row.status = target
        row.updated_at = self.now
        row.finished_at = self.now if target in FINISHED else None
        self.tx.emit(EVENT_TYPES[target], subject=row.id, core_id=row.core_id, data=data)

    def outcome(self, value: T) -> Outcome[T]:
        """``value`` with the changes recorded so far."""
        return Outcome(value, tuple(self.changes))


def load(tx: Tx, task_id: str) -> TaskRow:
    """The row of ``task_id`` or `TaskNotFound`."""
    row = select_one(tx.conn, task_id)
    if row is None:
        raise TaskNotFound(task_id)
    return row


# --- claim -----------------------------------------------------------------------------------------------


_CLAIMABLE = (
    "INDEXED BY tasks_claim WHERE status = 'queued' AND core_id = ? AND not_before <= ?"
    " ORDER BY rank, seq LIMIT ?"
)


def claim(
    tx: Tx, core_id: str, requests: Sequence[ClaimRequest], now: float, also: Sequence[str] = ()
) -> Outcome[list[ClaimedTask]]:
    """Claim the best-ranked due tasks of ``core_id`` (and of the cores in ``also``), one per request."""
    step = Step(tx, now)
    n = len(requests)
    rows = select_many(tx.conn, _CLAIMABLE, (core_id, now, n))
    if also:  # one ordered index range per core, merged: still O(n log depth), never a sort of a queue
        for other in also:
            rows.extend(select_many(tx.conn, _CLAIMABLE, (other, now, n)))
        rows = sorted(rows, key=lambda r: (r.rank, r.seq))[:n]
    out: list[ClaimedTask] = []
    for row, request in zip(rows, requests, strict=False):
        row.attempts += 1
        row.lease_token = new_lease_token()
        row.lease_s = request.lease_s
        row.lease_expires_at = now + request.lease_s
        row.deadline_at = None if row.timeout_s is None else now + row.timeout_s
        row.claimed_by = request.worker_id
        row.progress = None
        data = {
            "worker_id": request.worker_id,
            "attempt": row.attempts,
            "lease_expires_at": row.lease_expires_at,
        }
        if row.core_id != core_id:
            data["claimed_for"] = core_id  # taken by a fallback core's worker
        step.move(row, S.CLAIMED, data)
        row.save(tx.conn)
        out.append(ClaimedTask(row.view(), row.lease_token))
    return step.outcome(out)


def release(tx: Tx, task_id: str, lease_token: str, now: float) -> Outcome[bool]:
    """Give back a claim whose asker vanished before receiving it (not an attempt)."""
    step = Step(tx, now)
    row = select_one(tx.conn, task_id)
    if row is None or row.status is not S.CLAIMED or not row.holds(lease_token):
        return step.outcome(False)
    row.attempts -= 1
    row.clear_lease()
    row.claimed_by = None
    step.move(row, S.QUEUED, {"reason": "claim_abandoned", "attempt": row.attempts})
    row.save(tx.conn)
    return step.outcome(True)


# --- the holder's messages --------------------------------------------------------------------------------


def held(tx: Tx, task_id: str, lease_token: str) -> TaskRow:
    """The row of a task held under ``lease_token``, or `StaleLease` / `TaskNotFound`."""
    row = load(tx, task_id)
    if row.status not in HELD or not row.holds(lease_token):
        raise StaleLease(task_id)
    return row


_HOLDER = "SELECT seq, status, lease_token, lease_s, cancel_requested FROM tasks WHERE id = ?"
_HELD_VALUES = frozenset(status.value for status in HELD)


def heartbeat(
    tx: Tx,
    task_id: str,
    lease_token: str,
    lease_s: float | None,
    progress: Mapping[str, Any] | None,
    now: float,
) -> Outcome[HeartbeatAck]:
    """Extend a held task's lease (a lapsed lease not yet swept still counts as held)."""
    if progress is not None:
        return _heartbeat_with_progress(tx, task_id, lease_token, lease_s, progress, now)
    # The common heartbeat: a narrow read of the lease columns and one UPDATE, no event, no row decode.
    found = tx.conn.execute(_HOLDER, (task_id,)).fetchone()
    if found is None:
        raise TaskNotFound(task_id)
    seq, status, token, stored_lease, cancel_requested = found
    if status not in _HELD_VALUES or token is None or not hmac.compare_digest(token, lease_token):
        raise StaleLease(task_id)
    expires = now + (lease_s if lease_s is not None else (stored_lease or 0.0))
    if lease_s is None or lease_s == stored_lease:
        tx.conn.execute(_EXTEND, (expires, now, seq))
    else:
        tx.conn.execute(_EXTEND_NEW_LEASE, (lease_s, expires, now, seq))
    return Outcome(HeartbeatAck(task_id, expires, bool(cancel_requested)), ())


_EXTEND = "UPDATE tasks SET lease_expires_at = ?, updated_at = ? WHERE seq = ?"
_EXTEND_NEW_LEASE = "UPDATE tasks SET lease_s = ?, lease_expires_at = ?, updated_at = ? WHERE seq = ?"


def _heartbeat_with_progress(
    tx: Tx,
    task_id: str,
    lease_token: str,
    lease_s: float | None,
    progress: Mapping[str, Any],
    now: float,
) -> Outcome[HeartbeatAck]:
    row = held(tx, task_id, lease_token)
    if lease_s is not None:
        row.lease_s = lease_s
    row.lease_expires_at = now + (row.lease_s or 0.0)
    row.updated_at = now
    row.progress = progress
    tx.emit("task.progress", subject=row.id, core_id=row.core_id, data={"progress": dict(progress)})
    row.save(tx.conn)
    return Outcome(HeartbeatAck(row.id, row.lease_expires_at, row.cancel_requested), ())
