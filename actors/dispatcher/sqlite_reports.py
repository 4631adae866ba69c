"""Write ops that end or redirect a task: worker reports, operator cancel and requeue, failure handling.

Lease tokens: a token is valid while its task is held (claimed/running). A worker's own final report keeps
the token on the row so that a repeat of the same report (a retried HTTP call) returns the task unchanged;
when orch takes a task away (lease lapse, timeout) the token is cleared, so the old holder gets `StaleLease`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors.storage import Tx

from .lifecycle import HELD
from .messages import IllegalTransition, ReportStatus, StaleLease, TaskNotFound, TaskStatus, TaskView
from .rows import POSITION, TaskRow, dumps
from .sqlite_ops import Rules, Step, Writes, load
from .store import Outcome, ReportCmd

S = TaskStatus
R = ReportStatus


def end_attempt(step: Step, rules: Rules, row: TaskRow, first: TaskStatus, data: Mapping[str, Any]) -> None:
    """``first`` (failed or timed_out), then cancelled (if requested), retrying (backoff) or dead."""
    step.move(row, first, data)
    row.lease_expires_at = None
    row.deadline_at = None
    if row.cancel_requested:
        step.move(row, S.CANCELLED, {"reason": "cancel_requested"})
    elif row.attempts < row.max_attempts:
        delay = rules.retry.backoff(row.attempts, rules.rng)
        row.not_before = step.now + delay
        row.claimed_by = None
        data = {"attempt": row.attempts, "retry_at": row.not_before, "backoff_s": round(delay, 3)}
        step.move(row, S.RETRYING, data)
    else:
        step.move(row, S.DEAD, {"attempts": row.attempts, "reason": first.value})


def report(
    step: Step, writes: Writes, rules: Rules, found: tuple[Any, ...] | None, cmd: ReportCmd
) -> Outcome[TaskView]:
    """Apply a holder's report; a final status straight from claimed passes through running.

    ``found``: the task's row as `select_ids` read it. Writes go to ``writes``, events to ``step``.
    """
    if found is None:
        raise TaskNotFound(cmd.task_id)
    row = TaskRow.from_sql(found)
    status, progress = cmd.status, cmd.progress
    if not row.holds(cmd.lease_token):
        raise StaleLease(row.id)
    if row.status not in HELD:
        if row.status.value == status.value:  # a repeat of the report that ended the hold
            return Outcome(row.view(), ())
        raise StaleLease(row.id)
    if row.status is S.CLAIMED and status is not R.CANCELLED:
        step.move(row, S.RUNNING, {"worker_id": row.claimed_by, "attempt": row.attempts})
    if progress is not None:
        row.progress = progress
    _apply(step, rules, row, cmd)
    if step.changes or progress is not None or status is R.PROGRESS:
        row.updated_at = step.now
        if status is R.SUCCEEDED and progress is None and row.result is not None and found[_DEADLINE] is None:
            # The common success: what `TaskRow.update` would find changed, without its column diff.
            writes.add(_SUCCEEDED, (dumps(row.result), step.now, step.now, row.seq))
        else:
            writes.save(row)
    return step.outcome(row.view())


_SUCCEEDED = (
    "UPDATE tasks SET status = 'succeeded', lease_expires_at = NULL, result = ?, updated_at = ?,"
    " finished_at = ? WHERE seq = ?"
)
_DEADLINE = POSITION["deadline_at"]


def _apply(step: Step, rules: Rules, row: TaskRow, cmd: ReportCmd) -> None:
    match cmd.status:
        case R.RUNNING | R.PROGRESS:
            if cmd.progress is not None or cmd.status is R.PROGRESS:
                step.emit("task.progress", row, {"progress": dict(cmd.progress or {})})
        case R.SUCCEEDED:
            row.result = cmd.result
            row.lease_expires_at = row.deadline_at = None
            step.move(row, S.SUCCEEDED, {"attempt": row.attempts, "result": dict(cmd.result or {})})
        case R.FAILED:
            row.error = cmd.error or "failed"
            end_attempt(step, rules, row, S.FAILED, {"attempt": row.attempts, "error": row.error})
        case R.CANCELLED:
            row.error = cmd.error
            row.lease_expires_at = row.deadline_at = None
            step.move(row, S.CANCELLED, {"reason": "worker", "cancel_requested": row.cancel_requested})


def cancel(tx: Tx, task_id: str, reason: str | None, now: float) -> Outcome[TaskView]:
    """Cancel a waiting task; flag a held one (its worker learns it from its next heartbeat)."""
    row = load(tx, task_id)
    step = Step(tx, now)
    if row.status in (S.QUEUED, S.RETRYING):
        row.clear_lease()
        step.move(row, S.CANCELLED, {"reason": reason or "operator"})
    elif row.status in HELD:
        if row.cancel_requested:
            return Outcome(row.view(), ())
        row.cancel_requested = True
        row.updated_at = now
        data = {"reason": reason or "operator", "worker_id": row.claimed_by}
        tx.emit("task.cancel_requested", subject=row.id, core_id=row.core_id, data=data)
    elif row.status is S.CANCELLED:
        return Outcome(row.view(), ())
    else:
        raise IllegalTransition(task_id, row.status, S.CANCELLED)
    row.save(tx.conn)
    return step.outcome(row.view())


def requeue(tx: Tx, rules: Rules, task_id: str, reset_attempts: bool, now: float) -> Outcome[TaskView]:
    """Operator action: dead -> queued, at the back of its priority, by default with fresh attempts."""
    row = load(tx, task_id)
    if row.status is not S.DEAD:
        raise IllegalTransition(task_id, row.status, S.QUEUED)
    step = Step(tx, now)
    if reset_attempts:
        row.attempts = 0
    row.not_before = now
    row.rank = rules.aging.rank(now, row.priority)
    row.cancel_requested = False
    row.clear_lease()
    row.claimed_by = None
    step.move(row, S.QUEUED, {"reason": "requeue", "attempt": row.attempts})
    row.save(tx.conn)
    return step.outcome(row.view())
