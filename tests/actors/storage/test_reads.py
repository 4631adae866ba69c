"""Reads: own connection and thread, snapshot isolation, read-only."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
import trio

from actors.storage import Database, Tx


async def test_reads_do_not_wait_behind_a_long_write_batch(db: Database, gate: Any, add_item: Any) -> None:
    await db.write(add_item("committed"))

    def long_write(tx: Tx) -> None:
        add_item("uncommitted")(tx)
        gate.op(tx)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(db.write, long_write)
            await gate.wait_entered()
            # The writer thread is stuck inside its transaction; a read must still complete, and see only
            # committed data.
            names = await db.read(lambda c: [r[0] for r in c.execute("SELECT name FROM items")])
            assert await db.events_after(0, subject="uncommitted") == []
            gate.open()
    assert names == ["committed"]
    assert len(await db.events_after(0, subject="uncommitted")) == 1


async def test_read_sees_one_snapshot_across_statements(db: Database, add_item: Any) -> None:
    await db.write(add_item("a"))
    token = trio.lowlevel.current_trio_token()

    def two_counts(conn: sqlite3.Connection) -> tuple[int, int]:
        first = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        # Commit another row from the Trio side while this read is between its two statements.
        trio.from_thread.run(db.write, add_item("b"), trio_token=token)
        second = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        return first, second

    assert await db.read(two_counts) == (1, 1)
    assert await db.read(lambda c: c.execute("SELECT count(*) FROM items").fetchone()[0]) == 2


async def test_reader_connection_is_read_only(db: Database) -> None:
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await db.read(lambda c: c.execute("INSERT INTO items (name) VALUES ('x')"))


async def test_read_error_propagates_and_reader_stays_usable(db: Database) -> None:
    with pytest.raises(sqlite3.OperationalError):
        await db.read(lambda c: c.execute("SELECT * FROM no_such_table"))
    assert await db.read(lambda c: c.execute("SELECT 1").fetchone()[0]) == 1
