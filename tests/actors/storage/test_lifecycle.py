"""Opening and closing: both open forms, flush on close, closed errors, connection settings."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from actors.storage import Database, DatabaseClosedError, StoredEvent
from actors.storage.database import WRITER_CACHE_KIB


async def test_awaited_open_runs_the_writer_until_aclose(db_path: Path) -> None:
    published: list[StoredEvent] = []
    db = await Database.open(db_path, publish=published.extend)
    try:
        event = await db.write(lambda tx: tx.emit("actor.restarted", subject="a1"))
        assert published == [event]
    finally:
        await db.aclose()
    with pytest.raises(DatabaseClosedError):
        await db.write(lambda tx: None)
    with pytest.raises(DatabaseClosedError):
        await db.read(lambda c: None)
    await db.aclose()  # idempotent


async def test_aclose_flushes_queued_writes(db_path: Path, gate: Any) -> None:
    db = await Database.open(db_path)
    results: list[int] = []

    async def writer(i: int) -> None:
        results.append(await db.write(lambda tx: i))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(db.write, gate.op)
            await gate.wait_entered()
            for i in range(5):
                nursery.start_soon(writer, i)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(db.aclose)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(DatabaseClosedError):
                await db.write(lambda tx: None)  # closing: no new work accepted
            gate.open()
    assert sorted(results) == [0, 1, 2, 3, 4]


async def test_leaving_the_block_flushes_and_closes(db_path: Path, gate: Any) -> None:
    results: list[str] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            async with Database.open(db_path) as db:

                async def writer() -> None:
                    results.append(await db.write(lambda tx: "done"))

                nursery.start_soon(db.write, gate.op)
                await gate.wait_entered()
                nursery.start_soon(writer)
                await trio.testing.wait_all_tasks_blocked()
                gate.open()
    assert results == ["done"]
    with pytest.raises(DatabaseClosedError):
        await db.write(lambda tx: None)


async def test_cancelling_the_owner_closes_the_database(db_path: Path) -> None:
    with trio.CancelScope() as scope:
        async with Database.open(db_path) as db:
            scope.cancel()
            await trio.sleep_forever()
    with pytest.raises(DatabaseClosedError):
        await db.read(lambda c: None)


async def test_synchronous_mode_is_validated_and_applied(db_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        Database.open(db_path, synchronous="OFF")
    async with Database.open(db_path, synchronous="normal") as db:
        assert await db.write(lambda tx: tx.conn.execute("PRAGMA synchronous").fetchone()[0]) == 1
    async with Database.open(db_path) as db:
        assert await db.write(lambda tx: tx.conn.execute("PRAGMA synchronous").fetchone()[0]) == 2


async def test_connections_use_wal_foreign_keys_and_busy_timeout(db_path: Path) -> None:
    def pragmas(conn: sqlite3.Connection) -> tuple[Any, ...]:
        names = ("journal_mode", "foreign_keys", "busy_timeout")
        return tuple(conn.execute(f"PRAGMA {name}").fetchone()[0] for name in names)

    async with Database.open(db_path) as db:
        assert await db.write(lambda tx: pragmas(tx.conn)) == ("wal", 1, 5000)
        assert (await db.read(pragmas))[1:] == (1, 5000)
        await db.migrate("fk", ["CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (p REFERENCES p)"])
        with pytest.raises(sqlite3.IntegrityError):
            await db.write(lambda tx: tx.conn.execute("INSERT INTO c (p) VALUES (1)"))


async def test_writer_has_a_larger_page_cache_than_readers(db_path: Path) -> None:
    def cache_size(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA cache_size").fetchone()[0])

    async with Database.open(db_path) as db:
        assert await db.write(lambda tx: cache_size(tx.conn)) == -WRITER_CACHE_KIB
        assert await db.read(cache_size) == -2000  # SQLite's default: each commit resets a reader's cache


async def test_writes_queued_when_the_owner_is_cancelled_fail_not_hang(db_path: Path, gate: Any) -> None:
    outcomes: list[object] = []

    async def writer(db: Database) -> None:
        try:
            outcomes.append(await db.write(lambda tx: "committed"))
        except DatabaseClosedError as exc:
            outcomes.append(exc)

    with trio.fail_after(10):
        async with trio.open_nursery() as outer:  # the writers outlive the database's block
            with trio.CancelScope() as owner:
                async with Database.open(db_path) as db:
                    outer.start_soon(db.write, gate.op)
                    await gate.wait_entered()
                    for _ in range(3):
                        outer.start_soon(writer, db)
                    await trio.testing.wait_all_tasks_blocked()
                    owner.cancel()
                    gate.open()
                    await trio.sleep_forever()
    assert len(outcomes) == 3
    assert all(isinstance(o, DatabaseClosedError) for o in outcomes)


async def test_publish_gets_each_committed_batch_once_in_seq_order(db_path: Path, gate: Any) -> None:
    batches: list[list[int]] = []

    def many(events: Sequence[StoredEvent]) -> None:
        batches.append([event.seq for event in events])

    async with Database.open(db_path, publish=many) as db:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(db.write, gate.op)  # holds the writer: the next two ops share one batch
            await gate.wait_entered()
            for n in (2, 3):
                nursery.start_soon(
                    db.write, lambda tx, n=n: tx.emit_many("task.queued", [("s", "c", {})] * n)
                )
            await trio.testing.wait_all_tasks_blocked()
            gate.open()
        await db.write(lambda tx: None)  # a batch without events publishes nothing
    assert len(batches) == 1
    assert batches[0] == sorted(batches[0])
    assert len(batches[0]) == 5
    assert db.statistics().events_published == 5


async def test_publish_callback_error_does_not_break_writes(db_path: Path) -> None:
    seen: list[int] = []

    def flaky(events: Sequence[StoredEvent]) -> None:
        seen.extend(event.seq for event in events)
        raise RuntimeError("subscriber bug")

    async with Database.open(db_path, publish=flaky) as db:
        first = await db.write(lambda tx: tx.emit("task.queued"))
        second = await db.write(lambda tx: tx.emit("task.queued"))
    assert seen == [first.seq, second.seq]
