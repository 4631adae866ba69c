"""Throughput of `Database.write` (group commit) with many concurrent callers.

Each op inserts one task-like row and emits one event, like a dispatch. Usage:

    .venv/bin/python bench/storage_bench.py [--callers 100] [--seconds 5] [--synchronous FULL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio

from actors.storage import Database, StoredEvent, Tx

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


async def run(path: Path, callers: int, seconds: float, synchronous: str) -> None:
    published: list[StoredEvent] = []
    latencies: list[float] = []
    async with Database.open(path, synchronous=synchronous, publish=published.append) as db:
        await db.migrate("bench", SCHEMA)
        deadline = trio.current_time() + seconds

        async def caller(k: int) -> None:
            i = 0
            while trio.current_time() < deadline:
                started = time.perf_counter()
                await db.write(dispatch(k * 10_000_000 + i))
                latencies.append(time.perf_counter() - started)
                i += 1

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for k in range(callers):
                nursery.start_soon(caller, k)
        elapsed = time.perf_counter() - started
        stats = db.statistics()
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(
        f"synchronous={synchronous} callers={callers}: {stats.ops / elapsed:,.0f} ops/s "
        f"({stats.ops} ops, {len(published)} events in {elapsed:.1f}s), {stats.batches} batches, "
        f"{stats.ops_per_batch:.1f} ops/batch, max {stats.max_batch_size}, "
        f"latency p50 {p50:.1f} ms p99 {p99:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--callers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--synchronous", default="FULL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(run, Path(tmp) / "bench.db", args.callers, args.seconds, args.synchronous)


if __name__ == "__main__":
    main()
