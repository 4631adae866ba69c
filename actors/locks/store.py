"""Persistence of the lock table: held leases and fence counters, written with their events.

What is stored and why:
- ``locks``: one row per held lease (several per resource for shared leases), keyed by its token (every
  statement finds a lease by token), deadline as wall-clock unix seconds so a restarted node can tell how
  much of each lease is left.
- ``lock_fences``: the last fence per resource. It outlives the leases, so fences never repeat after a
  release, an expiry or a restart.
- The wait queue is *not* stored (the seed's ``lock_queue`` table is not created): a waiter is an open ask,
  and after a restart its asker is gone, so a persisted waiter could only be granted to nobody.

All SQL of the lock manager lives here; ops run in the storage layer's writer thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, assert_never

from actors.storage import EventItem, Migration, Tx

from .messages import LockMode
from .table import Change, Expired, Extended, Granted, Lease, Refused, Released

COMPONENT = "locks"

MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE locks (
        token TEXT PRIMARY KEY,
        resource TEXT NOT NULL,
        owner TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('exclusive', 'shared')),
        fence INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        acquired_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX locks_resource ON locks (resource);
    CREATE TABLE lock_fences (
        resource TEXT PRIMARY KEY,
        last_fence INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # Every statement finds a lease by token: keyed by token (WITHOUT ROWID) and without the unused
    # resource index, a grant or release touches one b-tree instead of three (fewer pages per commit).
    """
    CREATE TABLE locks_by_token (
        token TEXT PRIMARY KEY,
        resource TEXT NOT NULL,
        owner TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('exclusive', 'shared')),
        fence INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        acquired_at REAL NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO locks_by_token
        SELECT token, resource, owner, mode, fence, priority, acquired_at, expires_at FROM locks;
    DROP TABLE locks;
    ALTER TABLE locks_by_token RENAME TO locks;
    """,
]

_INSERT_LEASE = (
    "INSERT INTO locks (token, resource, owner, mode, fence, priority, acquired_at, expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_DELETE_LEASE = "DELETE FROM locks WHERE token = ?"
_BUMP_FENCE = (
    "INSERT INTO lock_fences (resource, last_fence) VALUES (?, ?)"
    " ON CONFLICT (resource) DO UPDATE SET last_fence = max(last_fence, excluded.last_fence)"
)


@dataclass(frozen=True, slots=True)
class StoredLocks:
    """What ``load`` found: leases with wall-clock times, and the fence counters."""

    leases: list[Lease]
    fences: dict[str, int]


def apply_changes(tx: Tx, changes: Sequence[Change], wall_offset: float) -> None:
    """Write ``changes`` and their events; ``wall_offset`` turns table times into unix seconds.

    Consecutive changes of one kind (the acquires or releases of many clients) are written as one run:
    one ``executemany`` per statement and one ``emit_many`` for their events. Runs keep the order of the
    changes, and within a run rows are independent or (extensions) applied in order.
    """
    for _, group in groupby(changes, type):
        run: list[Any] = list(group)
        match run[0]:
            case Granted():
                _write_granted(tx, run, wall_offset)
            case Released():
                _write_released(tx, run, wall_offset)
            case Extended():
                _write_extended(tx, run, wall_offset)
            case Expired():
                _write_expired(tx, run, wall_offset)
            case Refused():
                _write_refused(tx, run, wall_offset)
            case first:
                assert_never(first)


def _write_granted(tx: Tx, run: list[Granted], wall_offset: float) -> None:
    tx.conn.executemany(_INSERT_LEASE, [_lease_row(c.lease, wall_offset) for c in run])
    tx.conn.executemany(_BUMP_FENCE, [(c.lease.resource, c.lease.fence) for c in run])
    items: list[EventItem] = []
    for c in run:
        lease = c.lease
        data = _lease_data(lease, lease.expires_at + wall_offset)
        data.update(ttl=lease.expires_at - lease.acquired_at, waited=c.waited, priority=lease.priority)
        items.append((lease.resource, None, data))
    tx.emit_many("lock.acquired", items)


def _write_released(tx: Tx, run: list[Released], wall_offset: float) -> None:
    tx.conn.executemany(_DELETE_LEASE, [(c.lease.token,) for c in run])
    items: list[EventItem] = []
    for c in run:
        data = _lease_data(c.lease, c.lease.expires_at + wall_offset)
        data["reason"] = "abandoned" if c.abandoned else "released"
        items.append((c.lease.resource, None, data))
    tx.emit_many("lock.released", items)


def _write_extended(tx: Tx, run: list[Extended], wall_offset: float) -> None:
    rows = [(c.lease.expires_at + wall_offset, c.lease.token) for c in run]
    tx.conn.executemany("UPDATE locks SET expires_at = ? WHERE token = ?", rows)
    items: list[EventItem] = [
        (c.lease.resource, None, _lease_data(c.lease, c.lease.expires_at + wall_offset)) for c in run
    ]
    tx.emit_many("lock.extended", items)


def _write_expired(tx: Tx, run: list[Expired], wall_offset: float) -> None:
    tx.conn.executemany(_DELETE_LEASE, [(c.lease.token,) for c in run])
    items: list[EventItem] = [
        (c.lease.resource, None, _lease_data(c.lease, c.lease.expires_at + wall_offset)) for c in run
    ]
    tx.emit_many("lock.expired", items)


def _write_refused(tx: Tx, run: list[Refused], wall_offset: float) -> None:
    items: list[EventItem] = [
        (c.resource, None, {"action": c.action, "holder_fences": ",".join(map(str, c.holder_fences))})
        for c in run
    ]
    tx.emit_many("lock.refused", items)


def load(conn: sqlite3.Connection) -> StoredLocks:
    """Read every held lease (times in unix seconds) and every fence counter."""
    rows = conn.execute(
        "SELECT resource, owner, token, fence, mode, priority, acquired_at, expires_at FROM locks"
    ).fetchall()
    leases = [Lease(r, o, t, int(f), LockMode(m), int(p), a, e) for r, o, t, f, m, p, a, e in rows]
    fences = {r: int(f) for r, f in conn.execute("SELECT resource, last_fence FROM lock_fences")}
    return StoredLocks(leases, fences)


def _lease_row(lease: Lease, wall_offset: float) -> tuple[str, str, str, str, int, int, float, float]:
    return (
        lease.token,
        lease.resource,
        lease.owner,
        lease.mode.value,
        lease.fence,
        lease.priority,
        lease.acquired_at + wall_offset,
        lease.expires_at + wall_offset,
    )


def _lease_data(lease: Lease, expires_at: float) -> dict[str, str | int | float]:
    # Never the token: events reach the audit trail and SSE subscribers; the token is the owner's secret.
    return {"owner": lease.owner, "fence": lease.fence, "mode": lease.mode.value, "expires_at": expires_at}
