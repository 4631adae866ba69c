"""Schema versioning: the storage layer's own (PRAGMA user_version) and per-component forward migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from actors.storage import Database, Migration, SchemaTooNewError
from actors.storage.schema import STORAGE_MIGRATIONS


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
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
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


_V1_EVENTS = STORAGE_MIGRATIONS[0] + "PRAGMA user_version = 1;"  # the version-1 schema as shipped


def _version_1_database(path: Path, events: int, pruned_after: int) -> None:
    """A storage-version-1 file with ``events`` events, the last ``events - pruned_after`` already deleted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.executescript(_V1_EVENTS)
        for i in range(events):
            conn.execute(
                "INSERT INTO events (ts, type, topic, subject, data) VALUES (?, 'task.queued', 'task', ?, ?)",
                (1000.0 + i, f"t{i}", f'{{"i": {i}}}'),
            )
        conn.execute("DELETE FROM events WHERE seq > ?", (pruned_after,))
    conn.close()


async def test_version_1_events_are_kept_with_their_seqs_by_the_upgrade(db_path: Path) -> None:
    _version_1_database(db_path, events=5, pruned_after=5)
    async with Database.open(db_path) as db:
        kept = await db.events_after(0)
        assert [(e.seq, e.subject, e.data) for e in kept] == [(i + 1, f"t{i}", {"i": i}) for i in range(5)]
        assert await db.last_seq() == 5
        assert (await db.write(lambda tx: tx.emit("task.queued"))).seq == 6
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    conn.close()
    assert "AUTOINCREMENT" not in sql


async def test_upgrade_keeps_the_high_water_mark_of_pruned_version_1_events(db_path: Path) -> None:
    _version_1_database(db_path, events=7, pruned_after=4)  # seqs 5..7 were used, then deleted
    async with Database.open(db_path) as db:
        assert await db.last_seq() == 7
        floor = (await db.events_after(4))[0]
        assert (floor.seq, floor.type, floor.topic) == (7, "storage.seq_floor", "storage")
        assert (await db.write(lambda tx: tx.emit("task.queued"))).seq == 8


async def test_bulk_topic_is_left_out_of_the_topic_index_but_still_filters(db_path: Path) -> None:
    async with Database.open(db_path) as db:
        await db.write(lambda tx: [tx.emit(t) for t in ("task.queued", "lock.acquired", "task.claimed")])
        assert [e.type for e in await db.events_after(0, topics=["task"])] == ["task.queued", "task.claimed"]
        assert [e.type for e in await db.events_after(0, topics=["lock"])] == ["lock.acquired"]
        plan = await db.read(
            lambda c: c.execute(
                "EXPLAIN QUERY PLAN SELECT seq FROM events WHERE seq > 0 AND topic IN ('lock')"
                " AND topic <> 'task' ORDER BY seq"
            ).fetchall()
        )
    assert "events_topic_seq" in str(plan)
