"""Opening and configuring SQLite connections (blocking: call from a worker thread)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from .errors import StorageError

SYNCHRONOUS_MODES = ("FULL", "NORMAL")
BUSY_TIMEOUT_MS = 5_000


def normalize_synchronous(mode: str) -> str:
    """Validate ``synchronous``: FULL (durable on power loss) or NORMAL (durable on process crash)."""
    upper = mode.upper()
    if upper not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {mode!r}")
    return upper


def connect(path: Path, *, synchronous: str, query_only: bool) -> sqlite3.Connection:
    """Open one connection in autocommit mode (we issue BEGIN/COMMIT ourselves) with WAL and foreign keys.

    ``check_same_thread`` is off because trio's worker threads vary; a CapacityLimiter(1) per connection
    serializes its use instead. The writing connection never checkpoints by itself (``wal_autocheckpoint
    = 0``): the `Checkpointer` does, on a connection of its own.
    """
    if not query_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        if not query_only:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StorageError(f"could not switch {path} to WAL mode (got {mode!r})")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA synchronous = {normalize_synchronous(synchronous)}")
        conn.execute("PRAGMA foreign_keys = ON")
        if query_only:
            conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def rollback_quietly(conn: sqlite3.Connection) -> None:
    """End whatever transaction is open; used on error paths where the original error matters more."""
    if conn.in_transaction:
        # If even ROLLBACK fails the connection is unusable anyway; the caller reports the original error.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
