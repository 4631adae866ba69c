"""The task state machine: which status changes are allowed, and what each one means.

Shared by every `TaskStore` implementation: stores check each change against ``ALLOWED`` inside the
transaction that makes it, so the check and the write see the same row.
"""

from __future__ import annotations

from collections.abc import Mapping

from .messages import IllegalTransition, TaskStatus

S = TaskStatus

ALLOWED: Mapping[TaskStatus, frozenset[TaskStatus]] = {
    # cancelled: by an operator before any worker has it
    S.QUEUED: frozenset({S.CLAIMED, S.CANCELLED}),
    # queued: the lease lapsed (or the long-poll asker vanished); dead: ...with no attempt left
    S.CLAIMED: frozenset({S.RUNNING, S.QUEUED, S.DEAD, S.TIMED_OUT, S.CANCELLED}),
    # running -> running is a progress report
    S.RUNNING: frozenset({S.RUNNING, S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.CANCELLED, S.QUEUED, S.DEAD}),
    # cancelled: the attempt ended while an operator's cancel request was pending, so no retry
    S.FAILED: frozenset({S.RETRYING, S.DEAD, S.CANCELLED}),
    S.TIMED_OUT: frozenset({S.RETRYING, S.DEAD, S.CANCELLED}),
    S.RETRYING: frozenset({S.QUEUED, S.CANCELLED}),
    S.DEAD: frozenset({S.QUEUED}),
    S.SUCCEEDED: frozenset(),
    S.CANCELLED: frozenset(),
}

FINISHED: frozenset[TaskStatus] = frozenset({S.SUCCEEDED, S.CANCELLED, S.DEAD})
"""Statuses that end a task (``finished_at`` set; pruned by retention). Only dead can be left again."""

HELD: frozenset[TaskStatus] = frozenset({S.CLAIMED, S.RUNNING})
"""Statuses in which a worker holds the task under a lease."""

ATTEMPT_ENDS: frozenset[TaskStatus] = frozenset(
    {S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.CANCELLED, S.QUEUED, S.DEAD}
)
"""Targets that end a worker's attempt when reached from a held status (counted as completions)."""

EVENT_TYPES: Mapping[TaskStatus, str] = {status: f"task.{status.value}" for status in TaskStatus}


def check_transition(task_id: str, current: TaskStatus, target: TaskStatus) -> None:
    """Raise `IllegalTransition` unless ``current -> target`` is in the table."""
    if target not in ALLOWED[current]:
        raise IllegalTransition(task_id, current, target)


def ends_attempt(current: TaskStatus, target: TaskStatus) -> bool:
    """True if this change ends a worker's attempt (it counts towards completion throughput)."""
    return current in HELD and target in ATTEMPT_ENDS
