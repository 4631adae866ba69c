"""Schema upgrades of the lock store: what the first schema persisted is still held after the upgrade."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from actors.locks import store
from actors.locks.messages import GetLock, LockInfo, Release, ReleaseOutcome, ReleaseResult
from actors.storage import Database, Tx
from runtime import open_actor

from .conftest import WALL_EPOCH, ManagerFactory

TOKEN = "token-of-a"


def _write_v1_lease(tx: Tx) -> None:
    tx.conn.execute(
        "INSERT INTO locks (token, resource, owner, mode, fence, priority, acquired_at, expires_at)"
        " VALUES (?, 'deploy', 'a', 'exclusive', 7, 0, ?, ?)",
        (TOKEN, WALL_EPOCH, WALL_EPOCH + 600),
    )
    tx.conn.execute("INSERT INTO lock_fences (resource, last_fence) VALUES ('deploy', 7), ('old', 3)")


async def test_a_lease_held_under_the_first_schema_survives_the_upgrade(
    db_path: Path, lock_clock: trio.testing.MockClock, open_manager: ManagerFactory
) -> None:
    async with Database.open(db_path) as db:
        await db.migrate(store.COMPONENT, store.MIGRATIONS[:1])
        await db.write(_write_v1_lease)
    async with Database.open(db_path) as db, open_actor(open_manager(db)) as locks:
        found: LockInfo = await locks.ask(lambda r: GetLock("deploy", r))
        assert [(h.owner, h.fence) for h in found.holders] == [("a", 7)]
        released: ReleaseResult = await locks.ask(lambda r: Release("deploy", TOKEN, r))
        assert released.outcome is ReleaseOutcome.RELEASED
        old: LockInfo = await locks.ask(lambda r: GetLock("old", r))
        assert old.last_fence == 3


async def test_leases_are_stored_by_token_without_a_resource_index(db: Database) -> None:
    await db.migrate(store.COMPONENT, store.MIGRATIONS)
    rows = await db.read(
        lambda c: c.execute("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'locks'").fetchall()
    )
    assert [(kind, name) for kind, name, _ in rows] == [("table", "locks")]
    assert "WITHOUT ROWID" in rows[0][2]
