"""The SQLite store's per-core ops: isolation (``core_isolation`` table), forced re-queue, health figures.

Writes are plain functions of a `Tx` (writer thread), reads plain functions of the reader connection.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict

from actors.storage import Tx

from .messages import CoreState, TaskStatus
from .rows import TaskRow, select_many
from .sqlite_ops import Step
from .store import CoreLoad, Isolation, Outcome

S = TaskStatus


def _stored(conn: sqlite3.Connection, core_id: str) -> Isolation | None:
    row = conn.execute(
        "SELECT core_id, fallback, since, reason FROM core_isolation WHERE core_id = ?", (core_id,)
    ).fetchone()
    return None if row is None else Isolation(*row)


def isolate(tx: Tx, core_id: str, fallback: str | None, reason: str | None, now: float) -> CoreState:
    """Isolate ``core_id`` (or change its fallback/reason); emits ``core.isolated`` when anything changed."""
    old = _stored(tx.conn, core_id)
    if old is not None and old.fallback == fallback and (reason is None or old.reason == reason):
        return CoreState(core_id, True, old.fallback, old.since, old.reason, changed=False)
    since = now if old is None else old.since
    tx.conn.execute(
        "INSERT OR REPLACE INTO core_isolation (core_id, fallback, since, reason) VALUES (?, ?, ?, ?)",
        (core_id, fallback, since, reason),
    )
    tx.emit("core.isolated", subject=core_id, core_id=core_id, data={"fallback": fallback, "reason": reason})
    return CoreState(core_id, True, fallback, since, reason, changed=True)


def restore(tx: Tx, core_id: str, reason: str | None, now: float) -> CoreState:
    """End the isolation of ``core_id``; emits ``core.restored`` if it was isolated."""
    old = _stored(tx.conn, core_id)
    if old is None:
        return CoreState(core_id, False, None, None, None, changed=False)
    tx.conn.execute("DELETE FROM core_isolation WHERE core_id = ?", (core_id,))
    data = {"reason": reason, "isolated_since": old.since, "isolated_for_s": round(now - old.since, 3)}
    tx.emit("core.restored", subject=core_id, core_id=core_id, data=data)
    return CoreState(core_id, False, None, None, reason, changed=True)


def requeue_core(tx: Tx, core_id: str, reason: str | None, now: float) -> Outcome[int]:
    """Take back every held task of ``core_id`` exactly as an expired lease would, then ``core.requeued``.

    A core's held tasks are bounded by its workers, so this is one write op (no batching).
    """
    step = Step(tx, now)
    rows = select_many(
        tx.conn,
        "INDEXED BY tasks_lease WHERE status IN ('claimed', 'running') AND core_id = ? ORDER BY seq",
        (core_id,),
    )
    outcomes: defaultdict[str, int] = defaultdict(int)
    for row in rows:
        data = {"reason": "core_requeued", "attempt": row.attempts, "worker_id": row.claimed_by}
        outcomes[_take_back(step, row, data).value] += 1
        row.save(tx.conn)
    data = {"tasks": len(rows), "outcomes": dict(outcomes), "reason": reason}
    tx.emit("core.requeued", subject=core_id, core_id=core_id, data=data)
    return step.outcome(len(rows))


def _take_back(step: Step, row: TaskRow, data: dict[str, object]) -> TaskStatus:
    # The same three outcomes as a lapsed lease (sqlite_sweeps.expire_leases).
    row.clear_lease()
    if row.cancel_requested:
        step.move(row, S.CANCELLED, data)
    elif row.attempts >= row.max_attempts:
        row.error = "lease taken back (core re-queued) with no attempt left"
        step.move(row, S.DEAD, data)
    else:
        row.claimed_by = None
        step.move(row, S.QUEUED, data)
    return row.status


def isolations(conn: sqlite3.Connection) -> list[Isolation]:
    """Every isolated core."""
    sql = "SELECT core_id, fallback, since, reason FROM core_isolation ORDER BY core_id"
    return [Isolation(*row) for row in conn.execute(sql)]


def core_loads(conn: sqlite3.Connection) -> list[CoreLoad]:
    """Per core with queued or held tasks: counts, and the newest/oldest sign of life of its holders.

    Reads only the partial indexes of queued and held rows (cost follows the work in flight).
    """
    queued: dict[str, int] = {}
    sql = (
        "SELECT core_id, count(*) FROM tasks INDEXED BY tasks_claim WHERE status = 'queued' GROUP BY core_id"
    )
    for core, n in conn.execute(sql):
        queued[core] = n
    held: dict[str, dict[str, int]] = defaultdict(dict)
    beats: dict[str, tuple[float, float]] = {}
    sql = (
        "SELECT core_id, status, count(*), max(lease_expires_at - lease_s), min(lease_expires_at - lease_s)"
        " FROM tasks INDEXED BY tasks_lease WHERE status IN ('claimed', 'running') GROUP BY core_id, status"
    )
    for core, status, n, newest, oldest in conn.execute(sql):
        held[core][status] = n
        if newest is not None:
            was = beats.get(core, (newest, oldest))
            beats[core] = (max(was[0], newest), min(was[1], oldest))
    return [
        CoreLoad(
            core,
            queued.get(core, 0),
            held[core].get("claimed", 0) if core in held else 0,
            held[core].get("running", 0) if core in held else 0,
            beats[core][0] if core in beats else None,
            beats[core][1] if core in beats else None,
        )
        for core in sorted(set(queued) | set(held))
    ]
