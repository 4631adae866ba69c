"""The dispatch write op: inserting new tasks (each with its ``task.queued`` event) in the writer thread.

The hot path of `DispatchBatch`: ids drawn from pooled OS randomness, one ``executemany`` per run of new
rows and one (`Tx.emit_many`) for their events, idempotency keys looked up against rows already inserted
by the same batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from actors.storage import EventItem, Tx
from runtime import positional_builder

from .ids import new_task_ids
from .messages import TaskSpec, TaskStatus, TaskView, build_task_view
from .rows import INSERT, INSERT_PLAIN, TaskRow, select_many
from .sqlite_ops import Rules, Step, change
from .store import Dispatched, Outcome

S = TaskStatus
_dispatched: Callable[[TaskView, bool], Dispatched] = positional_builder(Dispatched)


def dispatch(
    tx: Tx, rules: Rules, specs: Sequence[TaskSpec], metadata_json: Sequence[str], now: float
) -> Outcome[list[Dispatched]]:
    """Insert ``specs`` (each with its ``task.queued`` event); known idempotency keys return the old task."""
    step = Step(tx, now)
    out: list[Dispatched] = []
    pending: list[_NewTask] = []
    ids = iter(new_task_ids(now, len(specs)))  # one each (a matched idempotency key leaves one unused)
    for spec, metadata in zip(specs, metadata_json, strict=True):
        if spec.idempotency_key is not None:
            _flush(tx, pending, step)  # the lookup must see the tasks of this batch inserted so far
            existing = _idempotent_match(tx, rules, spec, now)
            if existing is not None:
                out.append(_dispatched(existing.view(), False))
                continue
        new = _NewTask(next(ids), rules, spec, metadata, now)
        pending.append(new)
        out.append(_dispatched(new.view, True))
    _flush(tx, pending, step)
    return step.outcome(out)


def _idempotent_match(tx: Tx, rules: Rules, spec: TaskSpec, now: float) -> TaskRow | None:
    rows = select_many(
        tx.conn, "WHERE core_id = ? AND idempotency_key = ?", (spec.core_id, spec.idempotency_key)
    )
    if not rows:
        return None
    if rows[0].created_at >= now - rules.idempotency_window_s:
        return rows[0]
    # Outside the window the key is free again; the old task keeps running but loses its key.
    tx.conn.execute("UPDATE tasks SET idempotency_key = NULL WHERE seq = ?", (rows[0].seq,))
    return None


class _NewTask:
    """A task about to be inserted: its row parameters and its view (the batched-dispatch hot path)."""

    __slots__ = ("params", "sql", "view")

    def __init__(self, task_id: str, rules: Rules, spec: TaskSpec, metadata: str, now: float) -> None:
        not_before = now if spec.not_before is None else max(now, spec.not_before)
        rank = rules.aging.rank(not_before, spec.priority)
        if spec.timeout is None and spec.idempotency_key is None:  # no None to bind (see INSERT_PLAIN)
            self.sql = INSERT_PLAIN
            self.params: tuple[Any, ...] = (
                task_id, spec.core_id, spec.priority, "queued", spec.max_attempts, metadata, int(spec.stay),
                not_before, rank, now, now,
            )  # fmt: skip
        else:
            self.sql = INSERT
            self.params = (
                task_id, spec.core_id, spec.priority, "queued", spec.max_attempts, spec.timeout, metadata,
                int(spec.stay), spec.idempotency_key, not_before, rank, now, now,
            )  # fmt: skip
        self.view = build_task_view(
            task_id, spec.core_id, spec.priority, S.QUEUED, 0, spec.max_attempts, spec.timeout,
            spec.metadata, spec.stay, spec.idempotency_key, not_before, None, None, None, False, None, None,
            None, now, now, None,
        )  # fmt: skip


def _flush(tx: Tx, pending: list[_NewTask], step: Step) -> None:
    if not pending:
        return
    _insert(tx, pending)
    events: list[EventItem] = []
    for new in pending:
        view = new.view
        step.changes.append(change(view.core_id, view.priority, None, S.QUEUED, view.not_before))
        data: dict[str, Any] = {"priority": view.priority, "reason": "dispatch"}
        if view.not_before > step.now:
            data["not_before"] = view.not_before
        events.append((view.id, view.core_id, data))
    if len(events) == 1:
        tx.emit("task.queued", subject=events[0][0], core_id=events[0][1], data=events[0][2])
    else:
        tx.emit_many("task.queued", events)
    pending.clear()


def _insert(tx: Tx, pending: list[_NewTask]) -> None:
    """INSERT the rows in order (seq is dispatch order): one statement run per run of the same shape."""
    start = 0
    while start < len(pending):
        sql = pending[start].sql
        end = start + 1
        while end < len(pending) and pending[end].sql is sql:
            end += 1
        if end - start == 1:  # executemany costs ~15 us more than execute for a single row
            tx.conn.execute(sql, pending[start].params)
        else:
            tx.conn.executemany(sql, [new.params for new in pending[start:end]])
        start = end
