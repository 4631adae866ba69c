"""Write ops without a holder's report: lease-free status changes (operators, integrations) and hand-backs.

Both refuse (raise their domain error) before their first write or event, as `sqlite_commands` requires:
every transition of the path is checked against the lifecycle before the first move.
"""

from __future__ import annotations

from typing import Any

from actors.storage import Tx

from .lifecycle import FINISHED, HELD, check_transition
from .messages import IllegalTransition, TaskStatus, TaskView
from .rows import TaskRow
from .sqlite_ops import Rules, Step, held, load
from .sqlite_reports import end_attempt, requeue
from .store import Outcome, SetStatusCmd

S = TaskStatus


def _path(row: TaskRow, target: TaskStatus) -> list[TaskStatus]:
    """The statuses to move through; raises `IllegalTransition` if any step is not allowed."""
    if row.status is S.DEAD and target is S.QUEUED:
        return [S.QUEUED]
    if target is S.QUEUED and row.status not in HELD:  # queued -> queued etc.: nothing to re-queue
        raise IllegalTransition(row.id, row.status, target)
    steps = [S.RUNNING, target] if row.status is S.CLAIMED and target in (S.SUCCEEDED, S.FAILED) else [target]
    current = row.status
    for step in steps:
        check_transition(row.id, current, step)
        current = step
    return steps


def set_status(tx: Tx, rules: Rules, cmd: SetStatusCmd, now: float) -> Outcome[TaskView]:
    """Apply a lease-free status change (see `messages.SetStatus` for the rules)."""
    row = load(tx, cmd.task_id)
    target = cmd.status
    if row.status is target and target in FINISHED:  # a repeat of the change that ended the task
        return Outcome(row.view(), ())
    path = _path(row, target)
    if row.status is S.DEAD:  # dead -> queued is the operator's requeue, with a fresh attempt budget
        return requeue(tx, rules, row.id, True, now)
    audit: dict[str, Any] = {"lease_free": True}
    if cmd.principal is not None:
        audit["by"] = cmd.principal
    if cmd.reason is not None:
        audit["detail"] = cmd.reason
    step = Step(tx, now)
    holder = row.claimed_by
    if path[0] is S.RUNNING and row.status is S.CLAIMED:
        step.move(row, S.RUNNING, {"worker_id": holder, "attempt": row.attempts, **audit})
    if cmd.progress is not None:
        row.progress = cmd.progress
        tx.emit("task.progress", subject=row.id, core_id=row.core_id, data={"progress": dict(cmd.progress)})
    if target is not S.RUNNING:
        row.clear_lease()  # the holder's token is stale from now on: its next heartbeat tells it to stop
        _finish(step, rules, row, cmd, {"attempt": row.attempts, "worker_id": holder, **audit})
    row.updated_at = now
    row.save(tx.conn)
    return step.outcome(row.view())


def _finish(step: Step, rules: Rules, row: TaskRow, cmd: SetStatusCmd, data: dict[str, Any]) -> None:
    match cmd.status:
        case S.SUCCEEDED:
            row.result = cmd.result
            step.move(row, S.SUCCEEDED, {**data, "result": dict(cmd.result or {})})
        case S.FAILED | S.TIMED_OUT:
            row.error = cmd.error or f"marked {cmd.status.value} without a lease"
            if cmd.result is not None:
                row.result = cmd.result
            end_attempt(step, rules, row, cmd.status, {**data, "error": row.error})
        case S.CANCELLED:
            row.error = cmd.error
            step.move(row, S.CANCELLED, {**data, "reason": "set_status"})
        case S.DEAD:
            row.error = cmd.error or "marked dead without a lease"
            step.move(row, S.DEAD, {**data, "reason": "set_status"})
        case S.QUEUED:  # from held: as a lapsed lease, the attempt stays counted, the old rank is kept
            row.claimed_by = None
            step.move(row, S.QUEUED, {**data, "reason": "set_status"})
        case _:  # RUNNING is handled by the caller; CLAIMED/RETRYING are refused by the actor
            raise AssertionError(f"unexpected target {cmd.status}")


def hand_back(tx: Tx, task_id: str, lease_token: str, reason: str | None, now: float) -> Outcome[TaskView]:
    """The holder gives the task back: queued again at its old rank, the attempt not counted."""
    row = held(tx, task_id, lease_token)
    step = Step(tx, now)
    worker = row.claimed_by
    row.clear_lease()
    row.claimed_by = None
    if row.cancel_requested:  # it was going to stop anyway: the cancel wins
        step.move(row, S.CANCELLED, {"reason": "cancel_requested", "worker_id": worker, "released": True})
    else:
        row.attempts -= 1
        data = {"reason": "released", "worker_id": worker, "attempt": row.attempts, "detail": reason}
        step.move(row, S.QUEUED, data)
    row.save(tx.conn)
    return step.outcome(row.view())
