"""Throughput of `Database.write` (group commit) with many concurrent callers, and commit latency.

Each op inserts one task-like row and emits one event, like a dispatch. Usage:

    .venv/bin/python bench/storage_bench.py [--callers 100] [--seconds 5] [--synchronous FULL]

Prints ops/s, the callers' write latency (queueing + batch + thread hops) and the writer thread's commit
time per batch (BEGIN to COMMIT, which includes a WAL checkpoint whenever SQLite runs one inside COMMIT),
as p50/p99/max, plus the WAL file size at the end.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

import actors.storage.database as database_module
from actors.storage import Database, StoredEvent, Tx
from actors.storage.batch import BatchResult, PendingOp, run_batch

SCHEMA = [
    "CREATE TABLE tasks (id INTEGER PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL,"
    " payload TEXT NOT NULL)"
]


def dispatch(i: int) -> Callable[[Tx], int]:
    def op(tx: Tx) -> int:
        cur = tx.conn.execute(
            "INSERT INTO tasks (name, state, payload) VALUES (?, 'queued', ?)", (f"task-{i}", '{"x": 1}')
        )
        assert cur.lastrowid is not None
        tx.emit("task.queued", subject=str(cur.lastrowid), data={"name": f"task-{i}", "priority": 5})
        return cur.lastrowid

    return op


def record_commit_times(into: list[float]) -> None:
    """Wrap the writer's batch runner so every batch's BEGIN-to-COMMIT time lands in ``into``."""

    def timed(conn: Any, batch: Sequence[PendingOp]) -> BatchResult:
        result = run_batch(conn, batch)
        into.append(result.duration)
        return result

    vars(database_module)["run_batch"] = timed


def pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


async def run(path: Path, callers: int, seconds: float, synchronous: str) -> None:
    published: list[StoredEvent] = []
    latencies: list[float] = []
    commit_times: list[float] = []
    record_commit_times(commit_times)
    async with Database.open(path, synchronous=synchronous, publish=published.extend) as db:
        await db.migrate("bench", SCHEMA)
        deadline = trio.current_time() + seconds

        async def caller(k: int) -> None:
            i = 0
            while trio.current_time() < deadline:
                started = time.perf_counter()
                await db.write(dispatch(k * 10_000_000 + i))
                latencies.append(time.perf_counter() - started)
                i += 1

        started, cpu = time.perf_counter(), time.process_time()
        async with trio.open_nursery() as nursery:
            for k in range(callers):
                nursery.start_soon(caller, k)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        stats = db.statistics()
        wal = path.with_name(path.name + "-wal")
        wal_mb = wal.stat().st_size / 1e6 if wal.exists() else 0.0
    latencies.sort()
    commit_times.sort()
    print(
        f"synchronous={synchronous} callers={callers}: {stats.ops / elapsed:,.0f} ops/s "
        f"({stats.ops} ops, {len(published)} events in {elapsed:.1f}s,"
        f" cpu {cpu / stats.ops * 1e6:.0f} us/op),"
        f" {stats.batches} batches, {stats.ops_per_batch:.1f} ops/batch, max {stats.max_batch_size}\n"
        f"  write latency p50 {pct(latencies, 0.5):.2f} ms p99 {pct(latencies, 0.99):.2f} ms"
        f" max {latencies[-1] * 1000:.2f} ms\n"
        f"  commit time   p50 {pct(commit_times, 0.5):.2f} ms p99 {pct(commit_times, 0.99):.2f} ms"
        f" max {commit_times[-1] * 1000:.2f} ms  (writer thread, BEGIN..COMMIT)\n"
        f"  WAL at end {wal_mb:.1f} MB, {stats.checkpoints} checkpoints off the commit path"
        f" ({stats.checkpoint_pauses} between batches)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--callers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--synchronous", default="FULL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(run, Path(tmp) / "bench.db", args.callers, args.seconds, args.synchronous)


if __name__ == "__main__":
    main()
