"""WAL checkpoints on their own connection and thread, off the writer's commit path.

The writer connection runs with ``wal_autocheckpoint = 0``: otherwise SQLite checkpoints inside an unlucky
COMMIT (write-back + fsync of the main file), a latency spike for every caller of that batch. Instead the
`Checkpointer` task, woken by each committed batch and at most once per ``interval``:

1. runs a PASSIVE checkpoint on its own connection, concurrently with the writer (never blocks it);
2. if the WAL still holds ``restart_frames`` or more frames, runs a second PASSIVE one while holding the
   writer's thread limiter, i.e. between two batches: it only copies what the first one missed, and as
   nothing is appended meanwhile it completes, so the writer's next transaction starts the WAL over from
   its beginning (no busy-waiting, unlike RESTART, whose busy handler sleeps in steps of milliseconds);
3. when idle (no commit during the checkpoint) and the WAL file is larger than ``truncate_bytes`` (after a
   burst, or a long read that kept it from restarting), truncates it, again between two batches.

The WAL still grows by whatever is committed while one checkpoint runs. As a hard bound, the writer checks
the WAL file's size before each batch (one ``stat``) and, past ``max_wal_bytes``, waits for a TRUNCATE
checkpoint first: back-pressure that only an overloaded disk or a very long read ever triggers.

A checkpoint never waits for readers (busy_timeout 0): one blocked by a reader's snapshot is retried later.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import trio

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckpointPolicy:
    """When the checkpointer runs (see module doc)."""

    interval: float = 0.2  # seconds between checkpoints while commits keep coming (at most one per interval)
    restart_frames: int = 4_000  # WAL frames (pages) that make it pause the writer briefly to restart the WAL
    truncate_bytes: int = 64 * 1024 * 1024  # WAL file size above which an idle checkpoint truncates it
    max_wal_bytes: int = 256 * 1024 * 1024  # WAL file size at which the writer waits for a truncation

    def __post_init__(self) -> None:
        if self.interval < 0 or self.restart_frames < 1 or min(self.truncate_bytes, self.max_wal_bytes) < 0:
            raise ValueError(f"invalid checkpoint policy {self!r}")


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    """What ``PRAGMA wal_checkpoint`` reported: busy flag, frames in the WAL, frames copied back."""

    busy: bool
    wal_frames: int
    copied_frames: int


def wal_checkpoint(conn: sqlite3.Connection, mode: str) -> CheckpointResult:
    """Run one checkpoint (blocking: call in a worker thread)."""
    busy, frames, copied = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    return CheckpointResult(bool(busy), int(frames), int(copied))


class Checkpointer:
    """The checkpoint task of one `Database` (see module doc). Owns its connection once constructed."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        wal_path: Path,
        write_limiter: trio.CapacityLimiter,
        policy: CheckpointPolicy,
    ) -> None:
        self._conn = conn
        self._wal_path = wal_path
        self._write_limiter = write_limiter
        self._limiter = trio.CapacityLimiter(1)
        self._policy = policy
        self._dirty = trio.Event()
        self.checkpoints = 0  # checkpoints run (any mode)
        self.pauses = 0  # of which ran between two batches (WAL restart or truncate)
        self.failures = 0
        self.wal_frames = 0  # frames in the WAL after the last checkpoint
        self._busy_wal_bytes = 0  # WAL size when a truncation last failed (a reader held it)

    def note_commit(self) -> None:
        """Called on the Trio thread after each committed batch."""
        self._dirty.set()

    async def run(self) -> None:
        """Checkpoint after commits until cancelled (the `Database` cancels it when closing)."""
        next_at = trio.current_time()
        while True:
            await self._dirty.wait()
            await trio.sleep_until(next_at)
            self._dirty = trio.Event()
            next_at = trio.current_time() + self._policy.interval
            try:
                await self._checkpoint_once()
            except sqlite3.Error as exc:
                # Not fatal for the writes (the WAL just grows); retried after the next commit.
                self.failures += 1
                log.warning("WAL checkpoint failed: %r", exc)

    async def _checkpoint_once(self) -> None:
        result = await self._run("PASSIVE", pause=False)
        if result.wal_frames >= self._policy.restart_frames:
            result = await self._run("PASSIVE", pause=True)
        elif not self._dirty.is_set() and self._wal_bytes() > self._policy.truncate_bytes:
            result = await self._run("TRUNCATE", pause=True)
        self.wal_frames = result.wal_frames

    def wal_over_limit(self) -> bool:
        """True if the WAL file passed ``max_wal_bytes`` (and grew since a truncation last failed)."""
        size = self._wal_bytes()
        return size > self._policy.max_wal_bytes and size > 2 * self._busy_wal_bytes

    async def truncate(self) -> None:
        """Truncate the WAL now, between two batches (the writer loop awaits this: back-pressure)."""
        try:
            result = await self._run("TRUNCATE", pause=True)
        except sqlite3.Error as exc:
            self.failures += 1
            log.warning("WAL truncation failed: %r", exc)
            return
        self._busy_wal_bytes = self._wal_bytes() if result.busy else 0
        self.wal_frames = result.wal_frames

    async def _run(self, mode: str, *, pause: bool) -> CheckpointResult:
        # Own limiter: the connection serves one thread at a time (the writer loop may call `truncate`).
        async with self._limiter:
            self.checkpoints += 1
            if not pause:
                return await trio.to_thread.run_sync(wal_checkpoint, self._conn, mode)
            self.pauses += 1
            return await trio.to_thread.run_sync(
                wal_checkpoint, self._conn, mode, limiter=self._write_limiter
            )

    def _wal_bytes(self) -> int:
        try:
            return self._wal_path.stat().st_size
        except FileNotFoundError:
            return 0

    def close(self) -> None:
        """Close the connection (blocking; only once `run` has returned)."""
        self._conn.close()
