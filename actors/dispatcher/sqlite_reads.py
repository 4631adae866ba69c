"""The SQLite store's read queries: plain functions of the reader connection (run in its own thread)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import Any

from .messages import InvalidTask, TaskNotFound, TaskPage, TaskStatus, TaskView
from .rows import select_many, select_one
from .store import Backlog, CoreCounts

ACTIVE = ("queued", "claimed", "running", "retrying")


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


def counts(conn: sqlite3.Connection, now: float) -> list[CoreCounts]:
    """Per core: unfinished tasks by status, queued by priority, and since when the oldest due one waits."""
    by_status: dict[str, dict[TaskStatus, int]] = defaultdict(dict)
    by_priority: dict[str, dict[int, int]] = defaultdict(dict)
    oldest: dict[str, float | None] = {}
    sql = (
        "SELECT core_id, status, priority, count(*),"
        " min(CASE WHEN status = 'queued' AND not_before <= ? THEN not_before END)"
        f" FROM tasks WHERE status IN {ACTIVE!r} GROUP BY core_id, status, priority"
    )
    for core, status_text, priority, n, due_since in conn.execute(sql, (now,)):
        status = TaskStatus(status_text)
        by_status[core][status] = by_status[core].get(status, 0) + n
        if status is TaskStatus.QUEUED:
            by_priority[core][priority] = n
            if due_since is not None:
                prev = oldest.get(core)
                oldest[core] = due_since if prev is None else min(prev, due_since)
    return [
        CoreCounts(core, by_status[core], by_priority.get(core, {}), oldest.get(core))
        for core in sorted(by_status)
    ]


def backlog(conn: sqlite3.Connection, now: float) -> Backlog:
    """Queued counts per core and priority, not-yet-due queued tasks, and the next retry due time."""
    queued: dict[str, dict[int, int]] = defaultdict(dict)
    sql = "SELECT core_id, priority, count(*) FROM tasks WHERE status = 'queued' GROUP BY core_id, priority"
    for core, priority, n in conn.execute(sql):
        queued[core][priority] = n
    delayed = conn.execute(
        "SELECT core_id, not_before FROM tasks WHERE status = 'queued' AND not_before > ?", (now,)
    ).fetchall()
    return Backlog(dict(queued), [(c, nb) for c, nb in delayed], next_retry_due(conn))


def next_retry_due(conn: sqlite3.Connection) -> float | None:
    """The earliest ``not_before`` among retrying tasks."""
    row = conn.execute(
        "SELECT min(not_before) FROM tasks INDEXED BY tasks_retry WHERE status = 'retrying'"
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])
