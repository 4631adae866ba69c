"""Persistence of the security actor on the shared `Database`: tables, migrations, one write shape.

Every state change is a `Change` (rows to upsert + audit entries) applied in ONE write op, so a change
and its audit rows (and its `security.*` feed events) commit together. Audit rows are hash-chained inside
the writer thread: each op reads the last link in its own transaction, so the chain follows commit order.
Tables: users, security_events (append-only, enforced by triggers), revoked_tokens, refresh_families,
system_tokens, webhook_replays (digests of accepted webhook signatures / delivery ids until they expire, so
replay protection survives a restart).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.security.audit import (
    GENESIS,
    AuditRow,
    AuditVerification,
    ChainVerifier,
    canonical_json,
    chain_hash,
    scrub,
    utc_iso,
)
from actors.security.roles import Role
from actors.storage import Database, Migration, Tx

COMPONENT = "security"

MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE users (
        name               TEXT PRIMARY KEY,
        role               TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
        password_hash      BLOB NOT NULL,
        disabled           INTEGER NOT NULL DEFAULT 0,
        tokens_valid_after REAL NOT NULL DEFAULT 0,
        created_at         REAL NOT NULL,
        updated_at         REAL NOT NULL,
        version            INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE security_events (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        at        TEXT NOT NULL,
        type      TEXT NOT NULL,
        subject   TEXT,
        client    TEXT,
        data      TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL
    );
    CREATE INDEX security_events_subject ON security_events (subject, id);
    CREATE TRIGGER security_events_no_update BEFORE UPDATE ON security_events
    BEGIN SELECT RAISE(ABORT, 'security_events is append-only'); END;
    CREATE TRIGGER security_events_no_delete BEFORE DELETE ON security_events
    BEGIN SELECT RAISE(ABORT, 'security_events is append-only'); END;
    CREATE TABLE revoked_tokens (
        jti        TEXT PRIMARY KEY,
        expires_at REAL NOT NULL,
        revoked_at REAL NOT NULL,
        reason     TEXT NOT NULL
    );
    CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);
    CREATE TABLE refresh_families (
        family      TEXT PRIMARY KEY,
        user        TEXT NOT NULL REFERENCES users (name),
        current_jti TEXT NOT NULL,
        created_at  REAL NOT NULL,
        expires_at  REAL NOT NULL,
        revoked_at  REAL
    );
    CREATE INDEX refresh_families_user ON refresh_families (user);
    CREATE TABLE system_tokens (
        jti        TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        revoked_at REAL
    );
    """,
    """
    CREATE TABLE webhook_replays (
        expires_at REAL NOT NULL,
        key        TEXT NOT NULL
    );
    CREATE INDEX webhook_replays_expiry ON webhook_replays (expires_at);
    """,
]


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user row. `tokens_valid_after`: tokens with an earlier `iat` are revoked."""

    name: str
    role: Role
    password_hash: bytes = field(repr=False)
    disabled: bool
    tokens_valid_after: float
    created_at: float
    updated_at: float
    version: int = 1  # bumped by every change; the reload keeps whichever copy is newer


@dataclass(frozen=True, slots=True)
class Family:
    """A refresh-token family: only `current_jti` may be used; anything older is reuse."""

    family: str
    user: str
    current_jti: str
    created_at: float
    expires_at: float
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class SystemTokenRecord:
    """A long-lived token for a worker/integration (the token itself is never stored)."""

    jti: str
    name: str
    created_by: str
    created_at: float
    expires_at: float
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class Revocation:
    """A revoked jti, remembered until the token would have expired anyway."""

    jti: str
    expires_at: float
    revoked_at: float
    reason: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One security event to append. `publish` also emits it on the feed as `security.<type>`."""

    ts: float
    type: str
    subject: str | None = None
    client: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    publish: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """Rows to upsert and audit entries to append, all in one transaction."""

    users: tuple[UserRecord, ...] = ()
    revocations: tuple[Revocation, ...] = ()
    families: tuple[Family, ...] = ()
    system_tokens: tuple[SystemTokenRecord, ...] = ()
    audit: tuple[AuditEntry, ...] = ()
    replays: tuple[tuple[str, float], ...] = ()  # accepted webhooks' (replay key digest, expires_at)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The live security state as stored (expired revocations/families/tokens left out)."""

    users: dict[str, UserRecord]
    revocations: dict[str, Revocation]
    families: dict[str, Family]
    system_tokens: dict[str, SystemTokenRecord]


class SecurityStore:
    """The security tables on the shared database."""

    def __init__(self, db: Database, *, audit_key: bytes | None = None) -> None:
        self._db = db
        self._key = audit_key

    async def migrate(self) -> None:
        """Create or upgrade the security tables."""
        await self._db.migrate(COMPONENT, MIGRATIONS)

    async def load(self, now: float) -> Snapshot:
        """Read the live state (on start, and periodically to pick up changes made by the CLI)."""
        return await self._db.read(lambda conn: _load(conn, now))

    async def apply(self, *changes: Change) -> None:
        """Commit `changes`, in order, durably (rows, audit rows, feed events) in one transaction."""
        key = self._key

        def op(tx: Tx) -> None:
            for change in changes:
                _apply(tx, change, key)
            _insert_replays(tx.conn, [r for change in changes for r in change.replays])

        await self._db.write(op)

    async def load_replays(self, now: float, limit: int) -> list[tuple[str, float]]:
        """Unexpired webhook replay keys, the `limit` that expire last (what the bounded cache would keep)."""
        return await self._db.read(lambda conn: _load_replays(conn, now, limit))

    async def prune_replays(self, now: float, *, batch: int = 500) -> int:
        """Delete expired webhook replay keys in write ops of at most `batch` rows; returns how many."""
        total = 0
        while True:
            deleted = await self._db.write(lambda tx: _prune_replays(tx.conn, now, batch))
            total += deleted
            if deleted < batch:
                return total

    async def prune(self, now: float) -> None:
        """Forget revocations and families past their expiry (they can no longer matter)."""

        def op(tx: Tx) -> None:
            tx.conn.execute("DELETE FROM revoked_tokens WHERE expires_at < ?", (now,))
            tx.conn.execute("DELETE FROM refresh_families WHERE expires_at < ?", (now,))

        await self._db.write(op)

    async def audit_rows(self, after_id: int, limit: int, subject: str | None = None) -> list[AuditRow]:
        """Audit rows with id > `after_id`, oldest first."""
        return await self._db.read(lambda conn: _audit_rows(conn, after_id, limit, subject))

    async def verify_audit(self, chunk: int = 5000) -> AuditVerification:
        """Check the whole chain, `chunk` rows per read."""
        verifier = ChainVerifier(key=self._key)
        after = 0
        while True:
            rows = await self.audit_rows(after, chunk)
            if not rows or not verifier.feed(rows):
                return verifier.result()
            after = rows[-1].id


# ------------------------------------------------------------------------- ops (run in the writer thread)
def _apply(tx: Tx, change: Change, key: bytes | None) -> None:
    if change.users or change.revocations or change.families or change.system_tokens:
        _upsert_rows(tx.conn, change)
    append_audit(tx, change.audit, key)


def _upsert_rows(conn: sqlite3.Connection, change: Change) -> None:
    conn.executemany(
        "INSERT INTO users (name, role, password_hash, disabled, tokens_valid_after, created_at, updated_at,"
        " version) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET role = excluded.role,"
        " password_hash = excluded.password_hash, disabled = excluded.disabled,"
        " tokens_valid_after = excluded.tokens_valid_after, updated_at = excluded.updated_at,"
        " version = excluded.version",
        [_user_row(u) for u in change.users],
    )
    conn.executemany(
        "INSERT OR IGNORE INTO revoked_tokens (jti, expires_at, revoked_at, reason) VALUES (?, ?, ?, ?)",
        [(r.jti, r.expires_at, r.revoked_at, r.reason) for r in change.revocations],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO refresh_families"
        " (family, user, current_jti, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (f.family, f.user, f.current_jti, f.created_at, f.expires_at, f.revoked_at)
            for f in change.families
        ],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO system_tokens (jti, name, created_by, created_at, expires_at, revoked_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (t.jti, t.name, t.created_by, t.created_at, t.expires_at, t.revoked_at)
            for t in change.system_tokens
        ],
    )


def _insert_replays(conn: sqlite3.Connection, replays: list[tuple[str, float]]) -> None:
    # Append-only, no unique key: a random-key B-tree dirtied one page per delivery (measured 3x slower).
    # A key stored twice is harmless: loading keeps the latest expiry.
    if replays:
        conn.executemany("INSERT INTO webhook_replays (key, expires_at) VALUES (?, ?)", replays)


def _prune_replays(conn: sqlite3.Connection, now: float, batch: int) -> int:
    cursor = conn.execute(
        "DELETE FROM webhook_replays WHERE rowid IN"
        " (SELECT rowid FROM webhook_replays WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)",
        (now, batch),
    )
    return cursor.rowcount


def _user_row(u: UserRecord) -> tuple[object, ...]:
    return (
        u.name,
        u.role.value,
        u.password_hash,
        int(u.disabled),
        u.tokens_valid_after,
        u.created_at,
        u.updated_at,
        u.version,
    )


def append_audit(tx: Tx, entries: Sequence[AuditEntry], key: bytes | None) -> None:
    """Chain and insert `entries`; publish those marked so on the feed (scrubbed, never secrets)."""
    if not entries:
        return
    row = tx.conn.execute("SELECT hash FROM security_events ORDER BY id DESC LIMIT 1").fetchone()
    prev = GENESIS if row is None else str(row[0])
    for e in entries:
        data = scrub(e.data)
        at, text = utc_iso(e.ts), canonical_json(data)
        link = chain_hash(prev, at, e.type, e.subject, e.client, text, key=key)
        tx.conn.execute(
            "INSERT INTO security_events (at, type, subject, client, data, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at, e.type, e.subject, e.client, text, prev, link),
        )
        prev = link
        if e.publish:
            tx.emit(f"security.{e.type}", subject=e.subject, data=data)


# ------------------------------------------------------------------------- reads (run in the reader thread)
def _load(conn: sqlite3.Connection, now: float) -> Snapshot:
    users = {
        r[0]: UserRecord(r[0], Role(r[1]), bytes(r[2]), bool(r[3]), r[4], r[5], r[6], r[7])
        for r in conn.execute(
            "SELECT name, role, password_hash, disabled, tokens_valid_after, created_at, updated_at, version"
            " FROM users"
        )
    }
    revocations = {
        r[0]: Revocation(*r)
        for r in conn.execute(
            "SELECT jti, expires_at, revoked_at, reason FROM revoked_tokens WHERE expires_at >= ?", (now,)
        )
    }
    families = {
        r[0]: Family(*r)
        for r in conn.execute(
            "SELECT family, user, current_jti, created_at, expires_at, revoked_at FROM refresh_families"
            " WHERE expires_at >= ?",
            (now,),
        )
    }
    tokens = {
        r[0]: SystemTokenRecord(*r)
        for r in conn.execute(
            "SELECT jti, name, created_by, created_at, expires_at, revoked_at FROM system_tokens"
            " WHERE expires_at >= ?",
            (now,),
        )
    }
    return Snapshot(users, revocations, families, tokens)


def _load_replays(conn: sqlite3.Connection, now: float, limit: int) -> list[tuple[str, float]]:
    rows = conn.execute(
        "SELECT key, expires_at FROM webhook_replays WHERE expires_at > ? ORDER BY expires_at DESC LIMIT ?",
        (now, limit),
    )
    return [(str(k), float(e)) for k, e in rows]


def _audit_rows(conn: sqlite3.Connection, after_id: int, limit: int, subject: str | None) -> list[AuditRow]:
    sql = "SELECT id, at, type, subject, client, data, prev_hash, hash FROM security_events WHERE id > ?"
    args: tuple[Any, ...] = (after_id,)
    if subject is not None:
        sql += " AND subject = ?"
        args += (subject,)
    return [AuditRow(*r) for r in conn.execute(sql + " ORDER BY id LIMIT ?", (*args, limit))]
