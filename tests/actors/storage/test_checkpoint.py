"""WAL checkpoints run off the commit path: bounded WAL, writes never wait for a checkpoint, clean close."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import trio

import actors.storage.checkpoint as checkpoint_module
from actors.storage import CheckpointPolicy, Database, Tx
from actors.storage.checkpoint import CheckpointResult

from .conftest import THREAD_WAIT

BLOBS = ["CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB NOT NULL)"]


def add_blob(tx: Tx) -> None:
    tx.conn.execute("INSERT INTO blobs (body) VALUES (zeroblob(8000))")  # ~2 pages + index/table pages


def wal_size(db_path: Path) -> int:
    wal = db_path.with_name(db_path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


class BlockedCheckpoint:
    """Replaces `wal_checkpoint` so that the first checkpoint blocks its thread until `release()`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._real = checkpoint_module.wal_checkpoint
        self._entered = threading.Event()
        self._release = threading.Event()
        self.errors: list[BaseException] = []
        monkeypatch.setattr(checkpoint_module, "wal_checkpoint", self._checkpoint)

    def _checkpoint(self, conn: sqlite3.Connection, mode: str) -> CheckpointResult:
        self._entered.set()
        if not self._release.wait(THREAD_WAIT):
            raise TimeoutError("checkpoint was never released")
        try:
            return self._real(conn, mode)
        except BaseException as exc:
            self.errors.append(exc)
            raise

    async def wait_entered(self) -> None:
        if not await trio.to_thread.run_sync(self._entered.wait, THREAD_WAIT):
            raise TimeoutError("no checkpoint started")

    def release(self) -> None:
        self._release.set()


async def test_writer_connection_never_checkpoints_by_itself(db_path: Path) -> None:
    async with Database.open(db_path) as db:
        assert await db.write(lambda tx: tx.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]) == 0


async def test_wal_stays_bounded_under_sustained_writes(db_path: Path) -> None:
    policy = CheckpointPolicy(interval=0, restart_frames=100, max_wal_bytes=2_000_000)
    written_pages = 0
    largest_wal = 0
    async with Database.open(db_path, synchronous="NORMAL", checkpoint=policy) as db:
        await db.migrate("blobs", BLOBS)
        for _ in range(1_500):
            await db.write(add_blob)
            written_pages += 2
            largest_wal = max(largest_wal, wal_size(db_path))
        stats = db.statistics()
    # Without checkpoints the WAL would hold every page written (> 12 MB); past 2 MB the writer waits for a
    # truncation before its next batch, so it ends at most one batch (a few pages) past that.
    assert written_pages * 4096 > 12_000_000
    assert largest_wal < 2_100_000
    assert stats.checkpoints > 0
    assert stats.checkpoint_failures == 0


async def test_commits_continue_while_a_checkpoint_runs(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = BlockedCheckpoint(monkeypatch)
    async with Database.open(db_path, checkpoint=CheckpointPolicy(interval=0)) as db:
        await db.migrate("blobs", BLOBS)
        await blocked.wait_entered()  # the checkpoint after the migration's commit is now stuck
        with trio.fail_after(THREAD_WAIT):
            for _ in range(50):
                await db.write(add_blob)
        count = await db.read(lambda conn: conn.execute("SELECT count(*) FROM blobs").fetchone()[0])
        assert count == 50
        blocked.release()
    assert blocked.errors == []


async def test_aclose_waits_for_a_running_checkpoint_then_closes_cleanly(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = BlockedCheckpoint(monkeypatch)
    db = await Database.open(db_path, checkpoint=CheckpointPolicy(interval=0))
    await db.migrate("blobs", BLOBS)
    await db.write(add_blob)
    await blocked.wait_entered()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(db.aclose)
        await trio.testing.wait_all_tasks_blocked()
        blocked.release()  # aclose cannot finish before the checkpoint thread is done with its connection
    assert blocked.errors == []
    assert db.statistics().checkpoint_failures == 0
    assert wal_size(db_path) == 0  # the last connection to close checkpointed and removed the WAL
    async with Database.open(db_path) as reopened:
        count = await reopened.read(lambda conn: conn.execute("SELECT count(*) FROM blobs").fetchone()[0])
    assert count == 1


async def test_an_idle_checkpoint_truncates_an_oversized_wal(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = checkpoint_module.wal_checkpoint
    writes_done = threading.Event()
    truncated = threading.Event()
    sizes_after: list[int] = []

    def watched(conn: sqlite3.Connection, mode: str) -> CheckpointResult:
        result = real(conn, mode)
        if mode == "TRUNCATE" and writes_done.is_set():
            sizes_after.append(wal_size(db_path))  # still between two batches: no commit can interleave
            truncated.set()
        return result

    monkeypatch.setattr(checkpoint_module, "wal_checkpoint", watched)
    policy = CheckpointPolicy(interval=0, restart_frames=1_000_000, truncate_bytes=0)
    async with Database.open(db_path, synchronous="NORMAL", checkpoint=policy) as db:
        await db.migrate("blobs", BLOBS)
        for _ in range(20):
            await db.write(add_blob)
        writes_done.set()
        await db.write(add_blob)  # a commit after arming, so the checkpointer wakes once more
        assert await trio.to_thread.run_sync(truncated.wait, THREAD_WAIT)
        assert sizes_after[0] == 0
        assert db.statistics().checkpoint_pauses > 0
        await db.write(add_blob)  # and the writer carries on with a fresh WAL
        count = await db.read(lambda conn: conn.execute("SELECT count(*) FROM blobs").fetchone()[0])
    assert count == 22


def test_checkpoint_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="invalid checkpoint policy"):
        CheckpointPolicy(restart_frames=0)
    with pytest.raises(ValueError, match="invalid checkpoint policy"):
        CheckpointPolicy(interval=-1)
