"""`Database`: one SQLite file, one group-committing writer, one reader.

Lifecycle (Trio-idiomatic form first)::

    async with Database.open(path, publish=batch_fn) as db:      # writer loop runs in a nursery owned here
        ...                                                        # on exit: pending writes flushed, closed

    db = await Database.open(path)    # writer loop runs as a Trio system task; `await db.aclose()` yourself

Besides the writer loop, a `Checkpointer` task (same nursery or system task) keeps WAL checkpoints off the
commit path, on a third connection in its own thread (see `checkpoint`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections import deque
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import trio

from .batch import BatchResult, PendingOp, run_batch
from .checkpoint import Checkpointer, CheckpointPolicy
from .errors import DatabaseClosedError
from .events import EVENT_COLUMNS, StoredEvent, Tx, event_from_row
from .opener import DatabaseOpener
from .schema import BULK_TOPIC, Migration, keep_newest_event, migrate_component, upgrade_storage_schema
from .sqlite import connect, normalize_synchronous
from .stats import DatabaseStats, StatsCounter

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_BATCH = 1_000
WRITER_CACHE_KIB = 16 * 1024
"""The writer connection's page cache. SQLite's default (2 MiB) is smaller than the pages a busy queue keeps
rewriting (rows in flight, their index entries, the tails of the tables): in the websocket cycle bench
(8,000 tasks in flight) the node read 19-33 KB per task from disk with 2 MiB and 7-10 KB with 16 MiB, and
the cycle ran ~10 % faster. The writer is the only connection that writes, so its cache stays valid
across transactions; the cache grows only as pages are used."""


class Database:
    """The shared SQLite store: group-committed writes, snapshot reads, the event log (see module doc)."""

    def __init__(
        self,
        path: Path,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        checkpointer: sqlite3.Connection,
        *,
        publish: Callable[[Sequence[StoredEvent]], None] | None,
        max_batch: int,
        checkpoint: CheckpointPolicy,
    ) -> None:
        """Private: use `Database.open`."""
        self.path = path
        self._writer = writer
        self._reader = reader
        self._publish = publish
        self._max_batch = max_batch
        self._write_limiter = trio.CapacityLimiter(1)
        self._checkpointer = Checkpointer(
            checkpointer, path.with_name(path.name + "-wal"), self._write_limiter, checkpoint
        )
        self._read_limiter = trio.CapacityLimiter(1)
        self._queue: deque[PendingOp] = deque()
        self._wakeup = trio.Event()
        self._closing = False
        self._reader_closed = False
        self._loop_done = trio.Event()
        self._stats = StatsCounter()

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        synchronous: str = "FULL",
        publish: Callable[[Sequence[StoredEvent]], None] | None = None,
        max_batch: int = MAX_BATCH,
        checkpoint: CheckpointPolicy | None = None,
    ) -> DatabaseOpener[Database]:
        """Open (creating if needed) the database file and bring the storage schema up to date.

        Use as ``async with Database.open(...) as db`` (preferred) or ``db = await Database.open(...)``.
        ``synchronous``: FULL (default; acknowledged writes survive power loss) or NORMAL (survive a process
        crash only). ``publish`` is called on the Trio thread once per committed batch with all of its
        events, in seq order (one call, not one per event; treat the sequence as read-only), before the
        writers of that batch are released. ``checkpoint`` tunes the WAL checkpointer (`CheckpointPolicy`).
        Raises `SchemaTooNewError` for a file written by newer code.
        """
        normalize_synchronous(synchronous)
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        policy = CheckpointPolicy() if checkpoint is None else checkpoint

        async def connect_all() -> Database:
            conns = await trio.to_thread.run_sync(_open_all, Path(path), synchronous)
            return cls(
                Path(path),
                *conns,
                publish=publish,
                max_batch=max_batch,
                checkpoint=policy,
            )

        return DatabaseOpener(connect_all, lambda db: db._run(), lambda db: db.aclose())

    # ---- writes -------------------------------------------------------------------------------------------

    async def write(self, op: Callable[[Tx], T]) -> T:
        """Run ``op`` in the writer thread inside the next group-commit batch; returns after COMMIT.

        ``op`` is a plain synchronous function of the `Tx`; an exception it raises is re-raised here (its
        SAVEPOINT is rolled back, its events are not published, other ops of the batch still commit). If the
        batch as a whole fails to commit, every op of it raises that error. Cancelled while still queued: the
        op is withdrawn and never runs; cancelled once its batch is in flight: it still commits.
        """
        self._check_open()
        pending = PendingOp(op)
        self._queue.append(pending)
        self._stats.queued += 1
        self._wakeup.set()
        try:
            await pending.done.wait()
        except BaseException:
            if not pending.taken and not pending.withdrawn:
                pending.withdrawn = True
                self._stats.queued -= 1
                self._stats.ops_withdrawn += 1
            raise
        if pending.error is not None:
            raise pending.error
        return cast(T, pending.value)

    async def migrate(self, component: str, migrations: Sequence[Migration]) -> None:
        """Apply ``component``'s pending forward migrations atomically (version in ``schema_versions``).

        All pending migrations of one call run in one write op, so a failing one leaves the schema as it was.
        They run inside a transaction: ``PRAGMA foreign_keys`` cannot be toggled there (use
        ``PRAGMA defer_foreign_keys = ON`` for table rebuilds), and SQL scripts are split into statements
        rather than passed to ``executescript`` (which would COMMIT).
        """
        await self.write(lambda tx: migrate_component(tx.conn, component, migrations))

    async def prune_events(self, before_ts: float, *, batch: int = 500) -> int:
        """Delete events older than ``before_ts`` in small write ops (oldest first); returns how many.

        Walks from the lowest seq and stops at the first event that is not older, so it assumes timestamps
        grow with seq (they are taken in the single writer thread). The newest event of the log always stays
        (it keeps seqs from being reused), until a newer one exists.
        """
        if batch < 1:
            raise ValueError("batch must be >= 1")
        total = 0
        while True:
            deleted = await self.write(lambda tx: _prune_some(tx.conn, before_ts, batch))
            total += deleted
            if deleted < batch:
                return total

    async def _run(self) -> None:
        """The writer loop and the checkpointer; when the loop ends, stop the checkpointer and close."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._checkpointer.run, name="orch-storage-checkpointer")
                await self._writer_loop()
                nursery.cancel_scope.cancel()
        finally:
            self._closing = True
            self._fail_queued()
            try:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self._checkpointer.close)
                    await trio.to_thread.run_sync(self._writer.close, limiter=self._write_limiter)
            finally:
                self._loop_done.set()

    async def _writer_loop(self) -> None:
        try:
            while True:
                if self._checkpointer.wal_over_limit():
                    await self._checkpointer.truncate()
                batch = self._take_batch()
                if not batch:
                    if self._closing:
                        return
                    self._wakeup = trio.Event()
                    await self._wakeup.wait()
                    continue
                try:
                    result = await trio.to_thread.run_sync(
                        run_batch, self._writer, batch, limiter=self._write_limiter
                    )
                except BaseException:
                    # Cancelled (or no thread) before the batch started: none of its ops ran.
                    self._fail_ops(batch)
                    raise
                self._finish_batch(batch, result)
        finally:
            self._closing = True
            self._fail_queued()

    def _take_batch(self) -> list[PendingOp]:
        batch: list[PendingOp] = []
        while self._queue and len(batch) < self._max_batch:
            pending = self._queue.popleft()
            if not pending.withdrawn:
                pending.taken = True
                batch.append(pending)
        self._stats.queued -= len(batch)
        return batch

    def _finish_batch(self, batch: list[PendingOp], result: BatchResult) -> None:
        self._stats.record_batch(len(batch), result)
        if result.error is None:
            self._checkpointer.note_commit()
            self._publish_events(result.events)
        else:
            log.error("write batch of %d ops failed: %r", len(batch), result.error)
        for pending in batch:
            if pending.error is None and result.error is not None:
                pending.error = result.error
            pending.done.set()

    def _publish_events(self, events: list[StoredEvent]) -> None:
        if not events or self._publish is None:
            return
        try:
            self._publish(events)
        except Exception:
            log.exception("publish callback failed for events seq=%d..%d", events[0].seq, events[-1].seq)
        self._stats.events_published += len(events)

    def _fail_queued(self) -> None:
        queued = [pending for pending in self._queue if not pending.withdrawn]
        self._queue.clear()
        self._stats.queued = 0
        self._fail_ops(queued)

    def _fail_ops(self, ops: list[PendingOp]) -> None:
        for pending in ops:
            pending.error = DatabaseClosedError("database closed before this write ran")
            pending.done.set()

    # ---- reads --------------------------------------------------------------------------------------------

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the reader connection (own thread) in one read snapshot; never waits on writes."""
        self._check_open()
        return await trio.to_thread.run_sync(self._read_snapshot, fn, limiter=self._read_limiter)

    def _read_snapshot(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader_closed:
            raise DatabaseClosedError("database is closed")
        conn = self._reader
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    async def events_after(
        self,
        seq: int,
        *,
        limit: int = 1000,
        topics: Collection[str] | None = None,
        subject: str | None = None,
        core_id: str | None = None,
    ) -> list[StoredEvent]:
        """Committed events with ``seq`` greater than the given one, oldest first, optionally filtered."""
        if limit < 1:
            raise ValueError("limit must be >= 1")
        where = ["seq > ?"]
        params: list[Any] = [seq]
        if topics is not None:
            topic_list = list(topics)
            if not topic_list:
                return []
            where.append(f"topic IN ({', '.join('?' * len(topic_list))})")
            params.extend(topic_list)
            if BULK_TOPIC not in topic_list:  # lets SQLite use the partial topic index
                where.append(f"topic <> '{BULK_TOPIC}'")
        if subject is not None:
            where.append("subject = ?")
            params.append(subject)
        if core_id is not None:
            where.append("core_id = ?")
            params.append(core_id)
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
        params.append(limit)
        rows = await self.read(lambda conn: conn.execute(sql, params).fetchall())
        return [event_from_row(row) for row in rows]

    async def last_seq(self) -> int:
        """The highest seq ever committed (0 if none); stays put when old events are pruned."""
        # The newest row is never deleted (`keep_newest_event`), so the largest seq is the high-water mark.
        row = await self.read(lambda conn: conn.execute("SELECT max(seq) FROM events").fetchone())
        return 0 if row[0] is None else int(row[0])

    # ---- lifecycle ----------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop accepting work, flush writes already queued, close both connections. Idempotent.

        If cancelled while flushing, the reader is closed at once and the writer loop finishes the flush and
        closes the writer on its own.
        """
        self._closing = True
        self._wakeup.set()
        try:
            await self._loop_done.wait()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._close_reader, limiter=self._read_limiter)

    def _close_reader(self) -> None:
        if not self._reader_closed:
            self._reader_closed = True
            self._reader.close()

    def _check_open(self) -> None:
        if self._closing or self._loop_done.is_set():
            raise DatabaseClosedError("database is closed")

    def statistics(self) -> DatabaseStats:
        """A frozen snapshot of group-commit and checkpoint counters."""
        ckpt = self._checkpointer
        return self._stats.snapshot(ckpt.checkpoints, ckpt.pauses, ckpt.failures, ckpt.wal_frames)


def _open_all(
    path: Path, synchronous: str
) -> tuple[sqlite3.Connection, sqlite3.Connection, sqlite3.Connection]:
    """Writer (schema brought up to date), reader, checkpointer; all closed again if one fails."""
    opened: list[sqlite3.Connection] = []
    try:
        writer = connect(path, synchronous=synchronous, query_only=False)
        opened.append(writer)
        writer.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB:d}")
        upgrade_storage_schema(writer)
        reader = connect(path, synchronous=synchronous, query_only=True)
        opened.append(reader)
        checkpointer = connect(path, synchronous=synchronous, query_only=False)
        opened.append(checkpointer)
        # busy_timeout 0 from now on: a checkpoint that would wait for a reader gives up, retried later.
        checkpointer.execute("PRAGMA busy_timeout = 0")
    except BaseException:
        for conn in opened:
            conn.close()
        raise
    return writer, reader, checkpointer


def _prune_some(conn: sqlite3.Connection, before_ts: float, batch: int) -> int:
    # Look at the `batch` oldest rows only, so one op never scans the whole table.
    oldest = "seq IN (SELECT seq FROM (SELECT seq, ts FROM events ORDER BY seq LIMIT ?) WHERE ts < ?)"
    cur = conn.execute(f"DELETE FROM events WHERE {keep_newest_event(oldest)}", (batch, before_ts))
    return cur.rowcount
