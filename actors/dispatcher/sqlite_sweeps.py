"""Periodic write ops, each bounded by ``limit`` rows so one op never holds the writer for long.

``INDEXED BY`` pins the partial indexes: without statistics the planner would rather scan the status index
and sort, which grows with the number of held tasks instead of the number of expired ones.
"""

from __future__ import annotations

from actors.storage import Tx

from .messages import TaskStatus
from .rows import select_many
from .sqlite_ops import Rules, Step
from .sqlite_reports import end_attempt
from .store import Outcome

S = TaskStatus


def expire_leases(tx: Tx, now: float, limit: int) -> Outcome[int]:
    """Held tasks whose lease lapsed: cancelled if requested, dead if out of attempts, else queued again
    at their old rank (the lost attempt stays counted)."""
    step = Step(tx, now)
    rows = select_many(
        tx.conn,
        "INDEXED BY tasks_lease WHERE status IN ('claimed', 'running') AND lease_expires_at <= ?"
        " ORDER BY lease_expires_at LIMIT ?",
        (now, limit),
    )
    for row in rows:
        data = {"reason": "lease_expired", "attempt": row.attempts, "worker_id": row.claimed_by}
        row.clear_lease()
        if row.cancel_requested:
            step.move(row, S.CANCELLED, data)
        elif row.attempts >= row.max_attempts:
            row.error = "lease expired"
            step.move(row, S.DEAD, data)
        else:
            row.claimed_by = None
            step.move(row, S.QUEUED, data)
        row.save(tx.conn)
    return step.outcome(len(rows))


def expire_deadlines(tx: Tx, rules: Rules, now: float, limit: int) -> Outcome[int]:
    """Held tasks past ``claim time + timeout``: timed_out, then retrying / dead / cancelled."""
    step = Step(tx, now)
    rows = select_many(
        tx.conn,
        "INDEXED BY tasks_deadline WHERE status IN ('claimed', 'running')"
        " AND deadline_at IS NOT NULL AND deadline_at <= ?"
        " ORDER BY deadline_at LIMIT ?",
        (now, limit),
    )
    for row in rows:
        row.error = f"timed out after {row.timeout_s:g} s"
        data = {"attempt": row.attempts, "timeout_s": row.timeout_s, "worker_id": row.claimed_by}
        row.lease_token = None
        end_attempt(step, rules, row, S.TIMED_OUT, data)
        row.save(tx.conn)
    return step.outcome(len(rows))


def promote_retries(tx: Tx, rules: Rules, now: float, limit: int) -> Outcome[int]:
    """Retrying tasks whose backoff elapsed go back to the queue, ranked from their due time."""
    step = Step(tx, now)
    rows = select_many(
        tx.conn,
        "INDEXED BY tasks_retry WHERE status = 'retrying' AND not_before <= ? ORDER BY not_before LIMIT ?",
        (now, limit),
    )
    for row in rows:
        row.rank = rules.aging.rank(row.not_before, row.priority)
        step.move(row, S.QUEUED, {"reason": "retry", "attempt": row.attempts})
        row.save(tx.conn)
    return step.outcome(len(rows))


def prune_finished(tx: Tx, before: float, limit: int) -> int:
    """Delete up to ``limit`` tasks finished before ``before`` and their task events."""
    rows = tx.conn.execute(
        "SELECT seq, id FROM tasks WHERE finished_at IS NOT NULL AND finished_at < ?"
        " ORDER BY finished_at LIMIT ?",
        (before, limit),
    ).fetchall()
    for _, task_id in rows:
        tx.delete_events(subject=task_id, topic="task")
    tx.conn.executemany("DELETE FROM tasks WHERE seq = ?", [(seq,) for seq, _ in rows])
    return len(rows)
