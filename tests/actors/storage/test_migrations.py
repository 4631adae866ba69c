"""Schema versioning: the storage layer's own (PRAGMA user_version) and per-component forward migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from actors.storage import Database, Migration, SchemaTooNewError


def _recording(log: list[int], version: int) -> Migration:
    def migration(conn: sqlite3.Connection) -> None:
        conn.execute(f"CREATE TABLE t{version} (x INTEGER)")
        log.append(version)

    return migration


async def test_component_migrations_run_once_and_in_order(db_path: Path) -> None:
    log: list[int] = []
    first = [_recording(log, 1), _recording(log, 2), _recording(log, 3)]
    async with Database.open(db_path) as db:
        await db.migrate("comp", first)
        await db.migrate("comp", first)
    assert log == [1, 2, 3]
    async with Database.open(db_path) as db:
        await db.migrate("comp", first)
        await db.migrate("comp", [*first, _recording(log, 4)])
        version = await db.read(
            lambda c: c.execute("SELECT version FROM schema_versions WHERE component = 'comp'").fetchone()[0]
        )
    assert log == [1, 2, 3, 4]
    assert version == 4


async def test_components_are_versioned_independently(db_path: Path) -> None:
    log_a: list[int] = []
    log_b: list[int] = []
    async with Database.open(db_path) as db:
        await db.migrate("a", [_recording(log_a, 1)])
        await db.migrate("b", [lambda c: log_b.append(1), lambda c: log_b.append(2)])
    assert (log_a, log_b) == ([1], [1, 2])


async def test_sql_script_migration_keeps_trigger_bodies_whole(db_path: Path) -> None:
    script = """
        CREATE TABLE a (x INTEGER);  -- a comment; with a semicolon
        CREATE TABLE audit (x INTEGER);
        CREATE TRIGGER a_ins AFTER INSERT ON a BEGIN
            INSERT INTO audit (x) VALUES (new.x);
            INSERT INTO audit (x) VALUES (new.x + 1);
        END;
    """
    async with Database.open(db_path) as db:
        await db.migrate("trig", [script])
        await db.write(lambda tx: tx.conn.execute("INSERT INTO a (x) VALUES (10)"))
        rows = await db.read(lambda c: c.execute("SELECT x FROM audit ORDER BY x").fetchall())
    assert rows == [(10,), (11,)]


async def test_failing_migration_applies_nothing(db_path: Path) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        raise RuntimeError("bad migration")

    async with Database.open(db_path) as db:
        with pytest.raises(RuntimeError, match="bad migration"):
            await db.migrate("comp", ["CREATE TABLE first (x INTEGER)", broken])
        tables = await db.read(
            lambda c: [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        )
        versions = await db.read(lambda c: c.execute("SELECT * FROM schema_versions").fetchall())
    assert "first" not in tables
    assert versions == []


async def test_storage_schema_is_versioned_by_user_version(db_path: Path) -> None:
    async with Database.open(db_path):
        pass
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    expected = {"events", "schema_versions", "events_subject_seq", "events_core_id_seq", "events_topic_seq"}
    assert expected <= names


async def test_database_with_newer_storage_version_is_refused(db_path: Path) -> None:
    async with Database.open(db_path):
        pass
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(SchemaTooNewError, match="version 99"):
        async with Database.open(db_path):
            pass
    with pytest.raises(SchemaTooNewError):
        await Database.open(db_path)


async def test_component_with_newer_version_is_refused(db_path: Path) -> None:
    async with Database.open(db_path) as db:
        await db.migrate("comp", ["CREATE TABLE a (x INTEGER)", "CREATE TABLE b (x INTEGER)"])
        with pytest.raises(SchemaTooNewError) as info:
            await db.migrate("comp", ["CREATE TABLE a (x INTEGER)"])
    assert (info.value.component, info.value.found, info.value.known) == ("comp", 2, 1)


async def test_storage_component_name_is_reserved(db_path: Path) -> None:
    async with Database.open(db_path) as db:
        with pytest.raises(ValueError, match="reserved"):
            await db.migrate("storage", [])
