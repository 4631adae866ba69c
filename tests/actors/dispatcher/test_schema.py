"""The ``tasks`` table's schema: migration 3 (a status CHECK without an IN list, a covering claim index) keeps
every row and index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from actors.dispatcher.rows import INSERT
from actors.dispatcher.schema import COMPONENT, MIGRATIONS
from actors.dispatcher.sqlite_reads import QUEUED_BY_PRIORITY
from actors.storage import Database

_STATUS_WRITES = {
    "insert": INSERT,
    "status update": "UPDATE tasks SET status = ?, updated_at = ? WHERE seq = ?",
}


def _task(i: int, status: str) -> tuple[object, ...]:
    metadata = f'{{"i": {i}}}'
    return (
        f"t{i:04d}",
        f"core{i % 3}",
        i % 5,
        status,
        3,
        None,
        metadata,
        0,
        None,
        1.0 + i,
        2.0 + i,
        3.0,
        4.0,
    )


def _opcodes(conn: sqlite3.Connection, sql: str) -> set[str]:
    return {row[1] for row in conn.execute(f"EXPLAIN {sql}", [None] * sql.count("?"))}


def _dump(conn: sqlite3.Connection) -> tuple[list[tuple[object, ...]], list[str]]:
    rows = conn.execute("SELECT * FROM tasks ORDER BY seq").fetchall()
    indexes = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' AND sql IS NOT NULL"
        " ORDER BY name"
    ).fetchall()
    return rows, [name for (name,) in indexes]


def _claim_index_columns(conn: sqlite3.Connection) -> list[str]:
    return [row[2] for row in conn.execute("PRAGMA index_info(tasks_claim)")]


async def test_status_writes_build_no_temporary_btree(db_path: Path) -> None:
    # An IN-list CHECK made SQLite build a B-tree of the list on every INSERT and status UPDATE (~4 us each).
    async with Database.open(db_path) as db:
        await db.migrate(COMPONENT, MIGRATIONS)
    conn = sqlite3.connect(db_path)
    try:
        for what, sql in _STATUS_WRITES.items():
            assert "OpenEphemeral" not in _opcodes(conn, sql), what
    finally:
        conn.close()


async def test_migration_3_keeps_every_row_and_index(db_path: Path) -> None:
    statuses = [
        "queued",
        "claimed",
        "running",
        "succeeded",
        "failed",
        "timed_out",
        "cancelled",
        "retrying",
        "dead",
    ]
    async with Database.open(db_path) as db:
        await db.migrate(COMPONENT, MIGRATIONS[:2])
        await db.write(
            lambda tx: tx.conn.executemany(INSERT, [_task(i, s) for i, s in enumerate(statuses * 7)])
        )
        await db.write(lambda tx: tx.conn.execute("DELETE FROM tasks WHERE seq % 4 = 0"))  # gaps in seq
        before = await db.read(_dump)
        await db.migrate(COMPONENT, MIGRATIONS)
        after = await db.read(_dump)
        claim_key = await db.read(_claim_index_columns)
        version = await db.read(
            lambda c: c.execute(
                "SELECT version FROM schema_versions WHERE component = ?", (COMPONENT,)
            ).fetchone()
        )
    assert after == before
    assert len(after[1]) == 7
    # The claim order first (core, rank, seq), then what the queue statistics read, so they need no row.
    assert claim_key == ["core_id", "rank", "seq", "priority", "not_before", "status"]
    assert version == (3,)


async def test_status_check_still_refuses_an_unknown_status(db_path: Path) -> None:
    async with Database.open(db_path) as db:
        await db.migrate(COMPONENT, MIGRATIONS)
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            await db.write(lambda tx: tx.conn.execute(INSERT, _task(1, "paused")))
        await db.write(lambda tx: tx.conn.execute(INSERT, _task(2, "dead")))


async def test_queue_statistics_read_only_the_claim_index(db_path: Path) -> None:
    async with Database.open(db_path) as db:
        await db.migrate(COMPONENT, MIGRATIONS)
    conn = sqlite3.connect(db_path)
    try:
        plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {QUEUED_BY_PRIORITY}", (0.0,)))
    finally:
        conn.close()
    assert "COVERING INDEX tasks_claim" in plan
