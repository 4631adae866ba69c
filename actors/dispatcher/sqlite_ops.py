"""The SQLite store's write ops: plain functions of a `Tx`, run in the storage layer's writer thread.

Each op is one atomic step inside its own SAVEPOINT of a group-commit batch: a domain error it raises rolls
back only that op. Every status change goes through `Step.move`, which checks the lifecycle table, updates
the row copy, emits the event and records the `Change` for the actor. Ops on many distinct rows (claims,
runs of holders' messages) keep their events in a deferred `Step` and their UPDATEs in `Writes`, which
writes them all at the end with one ``executemany`` per statement shape and one `Tx.emit_run`.
"""

from __future__ import annotations

import hmac
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from actors.storage import Tx, TypedEventItem
from runtime import positional_builder

from .ids import new_lease_token
from .lifecycle import EVENT_TYPES, FINISHED, HELD, check_transition
from .messages import (
    ClaimedTask,
    HeartbeatAck,
    StaleLease,
    TaskNotFound,
    TaskStatus,
    TaskView,
)
from .policy import AgingRule, RetryPolicy
from .rows import POSITION, TaskRow, lease_of_lease_row, lease_of_row, select_many, select_one
from .store import Change, ClaimRequest, HeartbeatCmd, Outcome

S = TaskStatus
T = TypeVar("T")
# The objects built several times per task, built for a fraction of the cost of their constructors.
change: Callable[[str, int, TaskStatus | None, TaskStatus, float], Change] = positional_builder(Change)
outcome: Callable[[Any, tuple[Change, ...]], Outcome[Any]] = positional_builder(Outcome)
_heartbeat_ack: Callable[[str, float, bool], HeartbeatAck] = positional_builder(HeartbeatAck)
_claimed_task: Callable[[TaskView, str], ClaimedTask] = positional_builder(ClaimedTask)


@dataclass(frozen=True, slots=True)
class Rules:
    """The policies ops apply: aging (rank), retry backoff, idempotency window."""

    aging: AgingRule = field(default_factory=AgingRule)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    idempotency_window_s: float = 7 * 86_400.0
    rng: random.Random = field(default_factory=random.Random)


class Step:
    """Collects the status changes (and their events) of one op.

    Events are emitted as they happen, or, for a ``deferred`` step, kept in ``events`` for the caller to
    write with `Writes` once the op has fully succeeded (so that a refused op leaves nothing behind).
    """

    __slots__ = ("changes", "events", "now", "tx")

    def __init__(self, tx: Tx, now: float, *, deferred: bool = False) -> None:
        self.tx = tx
        self.now = now
        self.changes: list[Change] = []
        self.events: list[TypedEventItem] | None = [] if deferred else None

    def emit(self, type: str, row: TaskRow, data: Mapping[str, Any]) -> None:
        """An event about ``row``: emitted now, or kept if the step is deferred."""
        if self.events is None:
            self.tx.emit(type, subject=row.id, core_id=row.core_id, data=data)
        else:
            self.events.append((type, row.id, row.core_id, data))

    def move(self, row: TaskRow, target: TaskStatus, data: Mapping[str, Any]) -> None:
        """Check and apply ``row.status -> target`` on the row copy, emit its event, record the change."""
        check_transition(row.id, row.status, target)
        self.changes.append(change(row.core_id, row.priority, row.status, target, row.not_before))
        row.status = target
        row.updated_at = self.now
        row.finished_at = self.now if target in FINISHED else None
        self.emit(EVENT_TYPES[target], row, data)

    def outcome(self, value: T) -> Outcome[T]:
        """``value`` with the changes recorded so far."""
        return outcome(value, tuple(self.changes))


class Writes:
    """The UPDATEs and events of several ops on distinct rows, written together by `flush`.

    One ``executemany`` per statement shape and one `Tx.emit_run` for all events (seqs in the order the
    ops kept them): the rows are distinct, so the order of their UPDATEs does not matter.
    """

    __slots__ = ("events", "statements")

    def __init__(self) -> None:
        self.statements: dict[str, list[tuple[Any, ...]]] = {}
        self.events: list[TypedEventItem] = []

    def add(self, sql: str, params: tuple[Any, ...]) -> None:
        """Queue one statement."""
        runs = self.statements.get(sql)
        if runs is None:
            self.statements[sql] = [params]
        else:
            runs.append(params)

    def save(self, row: TaskRow) -> None:
        """Queue the UPDATE of ``row``, if it changed."""
        update = row.update()
        if update is not None:
            self.add(*update)

    def take(self, step: Step) -> None:
        """Queue the events a deferred ``step`` kept."""
        if step.events:
            self.events.extend(step.events)

    def flush(self, tx: Tx) -> None:
        """Write what was queued."""
        for sql, params in self.statements.items():
            tx.conn.executemany(sql, params)
        tx.emit_run(self.events)
        self.statements.clear()
        self.events.clear()


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
# The write-back of the common claim (no timeout, no deadline, progress or finish time left on the row):
# what `TaskRow.update` would find changed (it may skip lease_s, claimed_by or updated_at when they happen
# to be equal; setting them anyway touches no index), without its column-by-column diff.
_CLAIM_PLAIN = (
    "UPDATE tasks SET status = 'claimed', attempts = ?, lease_token = ?, lease_s = ?, lease_expires_at = ?,"
    " claimed_by = ?, updated_at = ? WHERE seq = ?"
)
_DEADLINE, _PROGRESS, _FINISHED_AT = POSITION["deadline_at"], POSITION["progress"], POSITION["finished_at"]


def claim(
    tx: Tx, core_id: str, requests: Sequence[ClaimRequest], now: float, also: Sequence[str] = ()
) -> Outcome[list[ClaimedTask]]:
    """Claim the best-ranked due tasks of ``core_id`` (and of the cores in ``also``), one per request."""
    n = len(requests)
    rows = select_many(tx.conn, _CLAIMABLE, (core_id, now, n))
    if also:  # one ordered index range per core, merged: still O(n log depth), never a sort of a queue
        for other in also:
            rows.extend(select_many(tx.conn, _CLAIMABLE, (other, now, n)))
        rows = sorted(rows, key=lambda r: (r.rank, r.seq))[:n]
    step = Step(tx, now, deferred=True)
    writes = Writes()
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
        loaded = row.loaded
        if (
            row.deadline_at is None
            and loaded[_DEADLINE] is None
            and loaded[_PROGRESS] is None
            and loaded[_FINISHED_AT] is None
        ):
            params = (row.attempts, row.lease_token, row.lease_s, row.lease_expires_at, row.claimed_by, now)
            writes.add(_CLAIM_PLAIN, (*params, row.seq))
        else:
            writes.save(row)
        out.append(_claimed_task(row.view(), row.lease_token))
    writes.take(step)
    writes.flush(tx)
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
    return holding(load(tx, task_id), lease_token)


def holding(row: TaskRow, lease_token: str) -> TaskRow:
    """``row`` if its task is held under ``lease_token``, else `StaleLease`."""
    if row.status not in HELD or not row.holds(lease_token):
        raise StaleLease(row.id)
    return row


_HELD_VALUES = frozenset(status.value for status in HELD)
_EXTEND = "UPDATE tasks SET lease_expires_at = ?, updated_at = ? WHERE seq = ?"
_EXTEND_NEW_LEASE = "UPDATE tasks SET lease_s = ?, lease_expires_at = ?, updated_at = ? WHERE seq = ?"


def heartbeat(
    step: Step, writes: Writes, found: tuple[Any, ...] | None, cmd: HeartbeatCmd, *, narrow: bool = False
) -> Outcome[HeartbeatAck]:
    """Extend a held task's lease (a lapsed lease not yet swept still counts as held).

    ``found``: the task's row as `select_ids` read it, as ``LEASE_COLUMNS`` if ``narrow`` (only for a
    heartbeat without progress), else as ``COLUMNS``. Writes go to ``writes``, events to ``step``; without
    progress nothing goes to ``step`` (only its ``now`` is read), so such heartbeats may share one.
    """
    if found is None:
        raise TaskNotFound(cmd.task_id)
    if cmd.progress is not None:
        return _heartbeat_with_progress(step, writes, TaskRow.from_sql(found), cmd, cmd.progress)
    # The common heartbeat: no row decode, one narrow UPDATE, no event.
    seq, status, token, stored_lease, cancel_requested = (lease_of_lease_row if narrow else lease_of_row)(
        found
    )
    if status not in _HELD_VALUES or token is None or not hmac.compare_digest(token, cmd.lease_token):
        raise StaleLease(cmd.task_id)
    now, lease_s = step.now, cmd.lease_s
    expires = now + (lease_s if lease_s is not None else (stored_lease or 0.0))
    if lease_s is None or lease_s == stored_lease:
        writes.add(_EXTEND, (expires, now, seq))
    else:
        writes.add(_EXTEND_NEW_LEASE, (lease_s, expires, now, seq))
    return outcome(_heartbeat_ack(cmd.task_id, expires, bool(cancel_requested)), ())


def _heartbeat_with_progress(
    step: Step, writes: Writes, row: TaskRow, cmd: HeartbeatCmd, progress: Mapping[str, Any]
) -> Outcome[HeartbeatAck]:
    holding(row, cmd.lease_token)
    if cmd.lease_s is not None:
        row.lease_s = cmd.lease_s
    row.lease_expires_at = step.now + (row.lease_s or 0.0)
    row.updated_at = step.now
    row.progress = progress
    step.emit("task.progress", row, {"progress": dict(progress)})
    writes.save(row)
    return outcome(_heartbeat_ack(row.id, row.lease_expires_at, row.cancel_requested), ())
