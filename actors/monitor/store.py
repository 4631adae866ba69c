"""`MetricsStore`: the monitor's own SQLite file (``data/metrics.db``) through `actors.storage.Database`.

It holds the sample history (raw points, folded into ``rollup_s`` buckets once older than the raw retention,
deleted after the retention), alerts, silences, recovery actions and isolated cores. The node opens it
(``async with MetricsStore.open(path) as store``) and hands it to the monitor, so the file outlives monitor
restarts. Metrics use ``synchronous=NORMAL``: losing the last second of samples on power loss is fine and
saves an fsync per sample round.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from actors.storage import Database, Migration, Tx

from . import records
from .messages import Alert, AlertState, RecoveryRecord, SilenceInfo

SCHEMA_V1 = (
    """
CREATE TABLE series (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
CREATE TABLE samples (
    series_id INTEGER NOT NULL REFERENCES series(id), ts REAL NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (series_id, ts)) WITHOUT ROWID;
CREATE TABLE rollups (
    series_id INTEGER NOT NULL REFERENCES series(id), bucket REAL NOT NULL,
    n INTEGER NOT NULL, total REAL NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL,
    PRIMARY KEY (series_id, bucket)) WITHOUT ROWID;
"""
    + records.SCHEMA_V1
)

MIGRATIONS: list[Migration] = [SCHEMA_V1]


class MetricsStore:
    """Async API over the metrics database; every SQL statement runs off the Trio thread."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._series_ids: dict[str, int] = {}  # touched only inside write ops (the single writer thread)

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path | str) -> AsyncIterator[MetricsStore]:
        """Open (creating and migrating) the metrics file for the duration of the block."""
        async with Database.open(path, synchronous="NORMAL") as db:
            await db.migrate("monitor", MIGRATIONS)
            yield cls(db)

    # ---- samples ------------------------------------------------------------------------------------------

    async def record(self, ts: float, values: Mapping[str, float]) -> int:
        """Store one round of samples (non-finite values are skipped); returns how many were stored."""
        rows = [(k, v) for k, v in values.items() if math.isfinite(v)]
        return await self.db.write(lambda tx: self._insert(tx.conn, ts, rows))

    def _insert(self, conn: sqlite3.Connection, ts: float, rows: list[tuple[str, float]]) -> int:
        params = [(self._series_id(conn, key), ts, value) for key, value in rows]
        conn.executemany("INSERT OR REPLACE INTO samples (series_id, ts, value) VALUES (?, ?, ?)", params)
        return len(params)

    def _series_id(self, conn: sqlite3.Connection, key: str) -> int:
        sid = self._series_ids.get(key)
        if sid is None:
            conn.execute("INSERT OR IGNORE INTO series (key) VALUES (?)", (key,))
            sid = int(conn.execute("SELECT id FROM series WHERE key = ?", (key,)).fetchone()[0])
            self._series_ids[key] = sid
        return sid

    async def history(
        self, key: str, since: float, until: float, max_points: int
    ) -> tuple[list[tuple[float, float]], float | None]:
        """Points of ``key`` in [since, until], raw or (if too many) averaged per step: (points, step)."""
        return await self.db.read(lambda conn: _history(conn, key, since, until, max_points))

    async def series(self, prefix: str, limit: int) -> list[str]:
        """Known series keys starting with ``prefix``."""
        sql = "SELECT key FROM series WHERE substr(key, 1, ?) = ? ORDER BY key LIMIT ?"
        rows = await self.db.read(lambda conn: conn.execute(sql, (len(prefix), prefix, limit)).fetchall())
        return [str(r[0]) for r in rows]

    async def compact(self, now: float, raw_retention_s: float, rollup_s: float, retention_s: float) -> int:
        """Fold raw points older than the raw retention into rollups, drop what is older than the retention.

        One small write op per series, so the writer thread is never held for long. Returns raw points folded.
        """
        ids = await self.db.read(lambda conn: [int(r[0]) for r in conn.execute("SELECT id FROM series")])
        cutoff, horizon = now - raw_retention_s, now - retention_s
        folded = 0
        for sid in ids:
            folded += await self.db.write(partial(_fold_op, sid=sid, cutoff=cutoff, r=rollup_s, h=horizon))
        await self.db.write(lambda tx: records.expire(tx.conn, horizon))
        return folded

    # ---- alerts, silences, recoveries, isolations -------------------------------------------------------

    async def save_alerts(self, alerts: Sequence[Alert], dropped: Sequence[str]) -> None:
        """Upsert each alert's open episode; delete the pending episodes (fingerprints) that were dropped."""
        await self.db.write(lambda tx: records.save_alerts(tx.conn, alerts, dropped))

    async def open_alerts(self) -> list[Alert]:
        """Pending and firing alerts (to restore the rule engine after a restart)."""
        return await self.db.read(lambda conn: records.load_alerts(conn, None, 100_000, open_only=True))

    async def list_alerts(self, state: AlertState | None, limit: int) -> list[Alert]:
        """Alerts newest first, optionally in one state."""
        return await self.db.read(lambda conn: records.load_alerts(conn, state, limit, open_only=False))

    async def add_silence(self, silence: SilenceInfo) -> None:
        """Store a new silence."""
        await self.db.write(lambda tx: records.insert_silence(tx.conn, silence))

    async def expire_silence(self, silence_id: str, now: float) -> bool:
        """End an active silence now; False if none matched."""
        return await self.db.write(lambda tx: records.expire_silence(tx.conn, silence_id, now))

    async def silences(self) -> list[SilenceInfo]:
        """Every stored silence (expired ones are pruned with the retention)."""
        return await self.db.read(records.load_silences)

    async def add_recovery(self, record: RecoveryRecord) -> RecoveryRecord:
        """Append an audited recovery action; returns it with its id."""
        return await self.db.write(lambda tx: records.insert_recovery(tx.conn, record))

    async def recoveries(self, target: str | None, limit: int) -> list[RecoveryRecord]:
        """Recovery actions newest first."""
        return await self.db.read(lambda conn: records.load_recoveries(conn, target, limit))

    async def set_isolated(self, core: str, since: float | None, detail: Mapping[str, str]) -> None:
        """Remember that ``core`` is isolated (``since`` None: no longer isolated)."""
        payload = json.dumps(dict(detail))
        await self.db.write(lambda tx: records.set_isolated(tx.conn, core, since, payload))

    async def isolated(self) -> dict[str, float]:
        """Isolated cores and since when."""
        return await self.db.read(records.load_isolated)


def _history(
    conn: sqlite3.Connection, key: str, since: float, until: float, max_points: int
) -> tuple[list[tuple[float, float]], float | None]:
    row = conn.execute("SELECT id FROM series WHERE key = ?", (key,)).fetchone()
    if row is None:
        return [], None
    union = (
        "SELECT ts, value, 1 AS n FROM samples WHERE series_id = :sid AND ts BETWEEN :a AND :b"
        " UNION ALL SELECT bucket, total / n, n FROM rollups"
        " WHERE series_id = :sid AND bucket BETWEEN :a AND :b"
    )
    args = {"sid": row[0], "a": since, "b": until}
    count = conn.execute(f"SELECT count(*) FROM ({union})", args).fetchone()[0]
    if count <= max_points:
        points = conn.execute(f"SELECT ts, value FROM ({union}) ORDER BY ts", args).fetchall()
        return [(float(t), float(v)) for t, v in points], None
    step = max((until - since) / max_points, 1e-9)
    sql = (
        f"SELECT :a + CAST((ts - :a) / :step AS INTEGER) * :step AS t, sum(value * n) / sum(n)"
        f" FROM ({union}) GROUP BY t ORDER BY t"
    )
    points = conn.execute(sql, {**args, "step": step}).fetchall()
    return [(float(t), float(v)) for t, v in points], step


def _fold_op(tx: Tx, *, sid: int, cutoff: float, r: float, h: float) -> int:
    return _fold(tx.conn, sid, cutoff, r, h)


def _fold(conn: sqlite3.Connection, sid: int, cutoff: float, rollup_s: float, horizon: float) -> int:
    # A bucket straddling the cutoff is folded in two passes; the upsert merges them.
    conn.execute(
        "INSERT INTO rollups (series_id, bucket, n, total, lo, hi)"
        " SELECT series_id, CAST(ts / :r AS INTEGER) * :r AS b, count(*), sum(value), min(value), max(value)"
        " FROM samples WHERE series_id = :sid AND ts < :cutoff GROUP BY b"
        " ON CONFLICT (series_id, bucket) DO UPDATE SET n = n + excluded.n, total = total + excluded.total,"
        " lo = min(lo, excluded.lo), hi = max(hi, excluded.hi)",
        {"r": rollup_s, "sid": sid, "cutoff": cutoff},
    )
    cur = conn.execute("DELETE FROM samples WHERE series_id = ? AND ts < ?", (sid, cutoff))
    conn.execute("DELETE FROM rollups WHERE series_id = ? AND bucket < ?", (sid, horizon))
    return cur.rowcount
