"""The SQLite store's read queries: plain functions of the reader connection (run in its own thread)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import Any

from .messages import InvalidTask, TaskNotFound, TaskPage, TaskStatus, TaskView
from .rows import select_many, select_one
from .store import Backlog, CoreCounts


def get(conn: sqlite3.Connection, task_id: str) -> TaskView:
    """One task or `TaskNotFound`."""
    row = select_one(conn, task_id)
    if row is None:
        raise TaskNotFound(task_id)
    return row.view()


def list_page(
    conn: sqlite3.Connection,
    statuses: frozenset[TaskStatus] | None,
    core_id: str | None,
    cursor: str | None,
    limit: int,
) -> TaskPage:
    """Tasks newest first; the cursor is the ``seq`` of the last task of the previous page."""
    where: list[str] = []
    params: list[Any] = []
    if statuses is not None:
        if not statuses:
            return TaskPage((), None)
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        params.extend(sorted(s.value for s in statuses))
    if core_id is not None:
        where.append("core_id = ?")
        params.append(core_id)
    if cursor is not None:
        if not cursor.isdigit():
            raise InvalidTask(f"bad cursor {cursor!r}")
        where.append("seq < ?")
        params.append(int(cursor))
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    rows = select_many(conn, f"{clause}ORDER BY seq DESC LIMIT ?", (*params, limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return TaskPage(tuple(r.view() for r in rows), str(rows[-1].seq) if more else None)


QUEUED_BY_PRIORITY = (
    "SELECT core_id, priority, count(*), min(CASE WHEN not_before <= ? THEN not_before END)"
    " FROM tasks INDEXED BY tasks_claim WHERE status = 'queued' GROUP BY core_id, priority"
)
"""Queued tasks per core and priority, and the oldest due one's ``not_before``: index-only (migration 3)."""


def counts(conn: sqlite3.Connection, now: float) -> list[CoreCounts]:
    """Per core: unfinished tasks by status, queued by priority, and since when the oldest due one waits.

    Reads only the partial indexes of unfinished rows, so the cost grows with the work in flight, not
    with the finished tasks kept for retention.
    """
    by_status: dict[str, dict[TaskStatus, int]] = defaultdict(dict)
    by_priority: dict[str, dict[int, int]] = defaultdict(dict)
    oldest: dict[str, float] = {}
    held = "SELECT core_id, status, count(*) FROM tasks INDEXED BY tasks_lease"
    held += " WHERE status IN ('claimed', 'running') GROUP BY core_id, status"
    for core, status, n in conn.execute(held):
        by_status[core][TaskStatus(status)] = n
    retrying = "SELECT core_id, count(*) FROM tasks INDEXED BY tasks_retry WHERE status = 'retrying'"
    retrying += " GROUP BY core_id"
    for core, n in conn.execute(retrying):
        by_status[core][TaskStatus.RETRYING] = n
    for core, priority, n, due_since in conn.execute(QUEUED_BY_PRIORITY, (now,)):
        by_priority[core][priority] = n
        by_status[core][TaskStatus.QUEUED] = by_status[core].get(TaskStatus.QUEUED, 0) + n
        if due_since is not None:
            oldest[core] = min(oldest.get(core, due_since), due_since)
    return [
        CoreCounts(core, by_status[core], by_priority.get(core, {}), oldest.get(core))
        for core in sorted(by_status)
    ]


def backlog(conn: sqlite3.Connection, now: float) -> Backlog:
    """Queued counts per core and priority, not-yet-due queued tasks, and the next retry due time."""
    queued: dict[str, dict[int, int]] = defaultdict(dict)
    sql = "SELECT core_id, priority, count(*) FROM tasks INDEXED BY tasks_claim WHERE status = 'queued'"
    sql += " GROUP BY core_id, priority"
    for core, priority, n in conn.execute(sql):
        queued[core][priority] = n
    delayed = conn.execute(
        "SELECT core_id, not_before FROM tasks INDEXED BY tasks_claim"
        " WHERE status = 'queued' AND not_before > ?",
        (now,),
    ).fetchall()
    return Backlog(dict(queued), [(c, nb) for c, nb in delayed], next_retry_due(conn))


def next_retry_due(conn: sqlite3.Connection) -> float | None:
    """The earliest ``not_before`` among retrying tasks."""
    row = conn.execute(
        "SELECT min(not_before) FROM tasks INDEXED BY tasks_retry WHERE status = 'retrying'"
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])
