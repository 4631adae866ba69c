"""The security store on a real SQLite file: migrations, round trips, pruning, commit ordering."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from actors.security.messages import DisableUser, ListUsers, Role, UserInfo
from actors.security.store import (
    AuditEntry,
    Change,
    Family,
    Revocation,
    SecurityStore,
    SystemTokenRecord,
    UserRecord,
)
from actors.storage import Database

NOW = 1_800_000_000.0


async def test_migration_is_idempotent_and_round_trips_every_table(db_path: Path) -> None:
    async with Database.open(db_path) as db:
        store = SecurityStore(db)
        await store.migrate()
        await store.migrate()
        user = UserRecord("alice", Role.ADMIN, b"$2b$04$hash", False, 0.0, NOW, NOW, 3)
        change = Change(
            users=(user,),
            revocations=(
                Revocation("j1", NOW + 10, NOW, "logout"),
                Revocation("old", NOW - 10, NOW - 20, "x"),
            ),
            families=(Family("f1", "alice", "j2", NOW, NOW + 100),),
            system_tokens=(SystemTokenRecord("s1", "w1", "root", NOW, NOW + 1000),),
            audit=(AuditEntry(NOW, "user_created", "alice", None, {"role": "admin"}),),
        )
        await store.apply(change)
        snap = await store.load(NOW)
        assert snap.users == {"alice": user}
        assert set(snap.revocations) == {"j1"}  # expired revocations are not loaded
        assert snap.families["f1"].current_jti == "j2"
        assert snap.system_tokens["s1"].name == "w1"
        await store.prune(NOW)
        conn = sqlite3.connect(db_path)
        assert conn.execute("SELECT jti FROM revoked_tokens").fetchall() == [("j1",)]
        conn.close()
        assert (await store.verify_audit()).checked == 1


async def test_audit_chain_spans_many_batches_and_chunks(db_path: Path) -> None:
    async with Database.open(db_path) as db:
        store = SecurityStore(db, audit_key=b"k" * 32)
        await store.migrate()
        async with trio.open_nursery() as nursery:
            for i in range(50):
                entry = AuditEntry(NOW + i, "login_failed", f"u{i}", "ip", {"n": i})
                nursery.start_soon(store.apply, Change(audit=(entry,)))
        report = await store.verify_audit(chunk=7)
        assert (report.ok, report.checked) == (True, 50)
        assert not (await SecurityStore(db, audit_key=b"x" * 32).verify_audit()).ok


async def test_rapid_changes_to_one_user_commit_in_order(
    open_security: Any, create_user: Callable[..., Awaitable[UserInfo]], db_path: Path
) -> None:
    async with open_security() as ref:
        await create_user(ref)
        async with trio.open_nursery() as nursery:
            for i in range(40):
                nursery.start_soon(ref.ask, lambda r, i=i: DisableUser("alice", "t", r, disabled=i % 2 == 0))
                await trio.lowlevel.checkpoint()
        (info,) = await ref.ask(ListUsers)
    conn = sqlite3.connect(db_path)
    disabled, version = conn.execute("SELECT disabled, version FROM users WHERE name = 'alice'").fetchone()
    conn.close()
    assert (bool(disabled), version) == (info.disabled, 41)  # the database agrees with memory
