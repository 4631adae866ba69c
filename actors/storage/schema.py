"""Schema of the storage layer itself and the forward-migration machinery shared by all components.

The storage layer's own tables (``events``, ``schema_versions``) are versioned by ``PRAGMA user_version``.
Every other component (dispatcher, locks, security, ...) keeps its version in ``schema_versions``.
Migrations are forward-only; a version newer than the code knows is refused (`SchemaTooNewError`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence

from .errors import SchemaTooNewError

Migration = str | Callable[[sqlite3.Connection], None]
"""A SQL script or a function of the connection; its list position + 1 is its version."""

STORAGE_COMPONENT = "storage"

BULK_TOPIC = "task"
"""The topic most events have; the topic index leaves it out (see `_events_without_autoincrement`)."""

_EVENTS_V2 = f"""
    CREATE TABLE events_v2 (
        seq     INTEGER PRIMARY KEY,
        ts      REAL NOT NULL,
        type    TEXT NOT NULL,
        topic   TEXT NOT NULL,
        subject TEXT,
        core_id TEXT,
        data    TEXT NOT NULL
    );
    INSERT INTO events_v2 (seq, ts, type, topic, subject, core_id, data)
        SELECT seq, ts, type, topic, subject, core_id, data FROM events ORDER BY seq;
    DROP TABLE events;
    ALTER TABLE events_v2 RENAME TO events;
    CREATE INDEX events_subject_seq ON events (subject, seq);
    CREATE INDEX events_core_id_seq ON events (core_id, seq);
    CREATE INDEX events_topic_seq ON events (topic, seq) WHERE topic <> '{BULK_TOPIC}';
"""


def _events_without_autoincrement(conn: sqlite3.Connection) -> None:
    """Version 2: ``events`` without AUTOINCREMENT, and a topic index that leaves out the bulk topic.

    Why: AUTOINCREMENT rewrites ``sqlite_sequence`` on every insert, and the full topic index was a fourth
    B-tree insert per event although a filter on the bulk topic matches most rows anyway (a scan by seq
    serves it). Together about a third of an event row's insert cost.

    Seqs still never go back: SQLite gives a new row the largest rowid + 1, and every delete keeps the newest
    row (`keep_newest_event`). The old table's high-water mark is carried over: if the newest events had
    already been pruned, a ``storage.seq_floor`` row is written at that seq. The copy runs once, at start-up.
    """
    found = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    high_water = 0 if found is None else int(found[0])
    run_migration(conn, _EVENTS_V2)
    newest = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
    if high_water > newest:
        conn.execute(
            "INSERT INTO events (seq, ts, type, topic, subject, core_id, data)"
            " VALUES (?, ?, 'storage.seq_floor', 'storage', NULL, NULL, '{}')",
            (high_water, time.time()),
        )


def keep_newest_event(where: str) -> str:
    """``where`` (an SQL condition on ``events``) restricted to rows other than the newest one.

    Every DELETE on ``events`` must use it: the newest row is what keeps seqs from being reused.
    """
    return f"({where}) AND seq < (SELECT max(seq) FROM events)"


STORAGE_MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE events (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        ts      REAL NOT NULL,
        type    TEXT NOT NULL,
        topic   TEXT NOT NULL,
        subject TEXT,
        core_id TEXT,
        data    TEXT NOT NULL
    );
    CREATE INDEX events_subject_seq ON events (subject, seq);
    CREATE INDEX events_core_id_seq ON events (core_id, seq);
    CREATE INDEX events_topic_seq ON events (topic, seq);
    CREATE TABLE schema_versions (
        component TEXT PRIMARY KEY,
        version   INTEGER NOT NULL
    );
    """,
    _events_without_autoincrement,
]


def split_sql(script: str) -> list[str]:
    """Split a SQL script into single statements (trigger bodies stay whole).

    ``executescript`` cannot be used: it COMMITs first, breaking the batch transaction and savepoints.
    """
    statements: list[str] = []
    start = 0
    for i, ch in enumerate(script):
        if ch == ";" and sqlite3.complete_statement(script[start : i + 1]):
            statements.append(script[start : i + 1].strip())
            start = i + 1
    rest = script[start:].strip()
    if rest:
        statements.append(rest)
    return statements


def run_migration(conn: sqlite3.Connection, migration: Migration) -> None:
    """Apply one migration inside the caller's transaction."""
    if isinstance(migration, str):
        for statement in split_sql(migration):
            conn.execute(statement)
    else:
        migration(conn)


def upgrade_storage_schema(conn: sqlite3.Connection) -> int:
    """Bring the storage layer's own schema up to date in one transaction; returns the final version.

    The connection must be in autocommit mode (no transaction open).
    """
    known = len(STORAGE_MIGRATIONS)
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if found > known:
            raise SchemaTooNewError(STORAGE_COMPONENT, found, known)
        for migration in STORAGE_MIGRATIONS[found:]:
            run_migration(conn, migration)
        if found != known:
            conn.execute(f"PRAGMA user_version = {known:d}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return known


def migrate_component(conn: sqlite3.Connection, component: str, migrations: Sequence[Migration]) -> list[int]:
    """Apply ``component``'s pending migrations inside the caller's transaction; returns their versions."""
    if component == STORAGE_COMPONENT:
        raise ValueError(f"component name {component!r} is reserved for the storage layer")
    row = conn.execute("SELECT version FROM schema_versions WHERE component = ?", (component,)).fetchone()
    found = 0 if row is None else int(row[0])
    known = len(migrations)
    if found > known:
        raise SchemaTooNewError(component, found, known)
    applied: list[int] = []
    for version in range(found + 1, known + 1):
        run_migration(conn, migrations[version - 1])
        applied.append(version)
    if applied:
        conn.execute(
            "INSERT INTO schema_versions (component, version) VALUES (?, ?)"
            " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            (component, known),
        )
    return applied
