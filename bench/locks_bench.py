"""Throughput and latency of the lock manager actor, durable (issue #4 targets in brackets).

    .venv/bin/python -m bench.locks_bench [--seconds 3] [--clients 100] [--waiters 100] [--synchronous FULL]
                                          [--background 0] [--gc-tune]

Prints, on a fresh SQLite file with the real storage layer (every grant and release is committed with its
event before it is acknowledged):
- uncontended acquire+release cycles/s: one client, then ``--clients`` clients each on its own resource
  [>= 5,000/s: concurrent requests share group-commit batches], with the commits they took, requests
  (acquires + releases) per commit, mean commit time and the share of the time the writer thread was busy;
- contention: ``--waiters`` clients looping acquire+release on ONE resource: grants/s, wait p50/p99 (ask to
  grant), and handoff p50/p99 (the holder sends its release -> the next waiter has its grant) [< 2 ms p99].

``--background N`` repeats the contended run while N other clients cycle on their own resources: a
release that arrives while their batch commits waits for that commit, then for its own (the handoff in
a busy node). ``--gc-tune`` applies the collector settings ``orch serve`` uses (gc.freeze, gen-0
threshold 100,000); without it, young collections (~0.2 ms each here) land in the handoff tail.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from actors.locks.actor import LockManager
from actors.locks.messages import Acquire, LeaseGrant, LockMsg, Release, ReleaseResult
from actors.storage import Database, DatabaseStats
from orch.config import FeedsConfig
from orch.feeds.gc_tuning import apply_gc_tuning
from runtime import ActorRef, open_actor

Locks = ActorRef[LockMsg]


def pct(values: list[float], q: float) -> float:
    """The q-quantile of ``values`` in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else float("nan")


def commit_share(before: DatabaseStats, after: DatabaseStats, requests: int, elapsed: float) -> str:
    """Commits, requests per commit and the writer thread's busy share between two storage snapshots.

    The lock manager writes each gathered batch as ONE storage op, so storage's ops per commit is always
    1.0 and says nothing; requests (acquires and releases) per commit show how many clients share one.
    """
    commits = after.batches - before.batches
    busy = after.total_commit_duration - before.total_commit_duration
    per_commit = requests / commits if commits else 0.0
    mean_ms = busy / commits * 1000 if commits else 0.0
    return (
        f"{commits} commits, {per_commit:.0f} requests/commit, {mean_ms:.2f} ms each, "
        f"writer thread busy {busy / elapsed:.0%}"
    )


async def cycle(locks: Locks, resource: str, owner: str) -> None:
    grant: LeaseGrant = await locks.ask(lambda r: Acquire(resource, owner, 30.0, r))
    result: ReleaseResult = await locks.ask(lambda r: Release(resource, grant.token, r))
    assert result.outcome.value == "released"


async def uncontended(locks: Locks, clients: int, seconds: float) -> tuple[float, list[float]]:
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []

    async def client(k: int) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await cycle(locks, f"res-{k}", f"client-{k}")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for k in range(clients):
            nursery.start_soon(client, k)
    return len(latencies) / (time.perf_counter() - started), latencies


async def contended(locks: Locks, waiters: int, seconds: float) -> tuple[float, list[float], list[float]]:
    deadline = time.perf_counter() + seconds
    waits: list[float] = []
    handoffs: list[float] = []
    last_release_sent: list[float] = []

    async def waiter(k: int) -> None:
        while time.perf_counter() < deadline:
            asked = time.perf_counter()
            grant: LeaseGrant = await locks.ask(lambda r: Acquire("hot", f"w{k}", 30.0, r))
            granted = time.perf_counter()
            waits.append(granted - asked)
            if last_release_sent:
                handoffs.append(granted - last_release_sent[0])
            last_release_sent[:] = [time.perf_counter()]
            token = grant.token
            await locks.ask(lambda r: Release("hot", token, r))  # noqa: B023  (awaited at once)

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for k in range(waiters):
            nursery.start_soon(waiter, k)
    return len(waits) / (time.perf_counter() - started), waits, handoffs


async def under_load(
    locks: Locks, waiters: int, background: int, seconds: float
) -> tuple[float, tuple[float, list[float], list[float]]]:
    """``contended`` while ``background`` clients cycle on their own resources (their cycles/s first)."""
    found: dict[str, Any] = {}

    async def load() -> None:
        found["load"] = await uncontended(locks, background, seconds)

    async def hot() -> None:
        found["hot"] = await contended(locks, waiters, seconds)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(load)
        nursery.start_soon(hot)
    return found["load"][0], found["hot"]


def print_contended(label: str, rate: float, waits: list[float], handoffs: list[float]) -> None:
    """One line of grant rate, wait and handoff percentiles."""
    print(
        f"{label} {rate:8,.0f} grants/s  "
        f"wait p50 {pct(waits, 0.5):.1f} ms  p99 {pct(waits, 0.99):.1f} ms  "
        f"handoff p50 {pct(handoffs, 0.5):.2f} ms  p99 {pct(handoffs, 0.99):.2f} ms"
    )


async def run(
    path: Path, seconds: float, clients: int, waiters: int, synchronous: str, background: int
) -> None:
    async with Database.open(path, synchronous=synchronous) as db:
        factory: Callable[[], LockManager] = lambda: LockManager(db)  # noqa: E731
        async with open_actor(factory, capacity=10_000, name="locks") as locks:
            await uncontended(locks, 1, 0.3)  # warm-up
            rate, lat = await uncontended(locks, 1, seconds)
            print(
                f"uncontended, 1 client:        {rate:8,.0f} cycles/s  "
                f"cycle p50 {pct(lat, 0.5):.2f} ms  p99 {pct(lat, 0.99):.2f} ms"
            )
            before, started = db.statistics(), time.perf_counter()
            rate, lat = await uncontended(locks, clients, seconds)
            commits = commit_share(before, db.statistics(), 2 * len(lat), time.perf_counter() - started)
            print(
                f"uncontended, {clients} clients:   {rate:8,.0f} cycles/s  "
                f"cycle p50 {pct(lat, 0.5):.2f} ms  p99 {pct(lat, 0.99):.2f} ms  ({commits})"
            )
            print_contended(f"contended, {waiters} waiters on 1:", *await contended(locks, waiters, seconds))
            if background:
                load, hot = await under_load(locks, waiters, background, seconds)
                print_contended(f"  same, {background} clients cycling beside ({load:,.0f} cycles/s):", *hot)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--waiters", type=int, default=100)
    parser.add_argument("--synchronous", default="FULL")
    parser.add_argument(
        "--background", type=int, default=0, help="repeat the contended run beside N uncontended clients"
    )
    parser.add_argument(
        "--gc-tune", action="store_true", help="gc.freeze() + gen-0 threshold 100,000, as `orch serve` does"
    )
    args = parser.parse_args()
    if args.gc_tune:
        apply_gc_tuning(FeedsConfig())
    print(
        f"synchronous={args.synchronous}  gc={'tuned as orch serve' if args.gc_tune else 'Python defaults'}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "locks.db"
        trio.run(run, path, args.seconds, args.clients, args.waiters, args.synchronous, args.background)


if __name__ == "__main__":
    main()
