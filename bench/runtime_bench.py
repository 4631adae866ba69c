"""Throughput and latency of the actor runtime (issue #2 targets in brackets).

    .venv/bin/python bench/runtime_bench.py [--seconds 2] [--gc-tune]

Prints ask round trips/s [>= 30,000], tell messages/s [>= 150,000], restart latency from crash to running
again with zero backoff, p50/p99 [p99 < 5 ms], and Broadcast deliveries/s to 1, 100 and 1,000
subscribers [>= 300,000 at 1,000]. A delivery is one event *received* by one subscriber task. The
publisher publishes ``burst`` events between checkpoints: burst 1 is the worst case (every event wakes
every subscriber: one task switch per delivery); larger bursts are what a group commit publishes at once,
and the subscribers then take them as one coalesced batch. ``--gc-tune`` applies the node's start-up GC
settings (``gc.freeze()`` and a 100,000 gen-0 threshold, DESIGN §7).
"""

from __future__ import annotations

import argparse
import gc
import logging
import time
from dataclasses import dataclass

import trio

from runtime import (
    Actor,
    Backoff,
    ChildRestarted,
    Intensity,
    Reply,
    RuntimeEvent,
    Supervisor,
    open_actor,
    supervisor,
    worker,
)
from runtime.broadcast import Broadcast, Subscription

# --- messages and actors ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping:
    reply: Reply[int]


@dataclass(frozen=True, slots=True)
class Bump:
    pass


@dataclass(frozen=True, slots=True)
class Count:
    reply: Reply[int]


@dataclass(frozen=True, slots=True)
class Boom:
    pass


Msg = Ping | Bump | Count | Boom


class Counter(Actor[Msg]):
    """Answers pings, counts bumps, crashes on ``Boom`` after stamping the crash time."""

    crashed_at = 0.0

    def __init__(self) -> None:
        self.bumps = 0

    async def handle(self, message: Msg) -> None:
        match message:
            case Ping(reply=reply):
                reply.send(1)
            case Bump():
                self.bumps += 1
            case Count(reply=reply):
                reply.send(self.bumps)
            case Boom():
                Counter.crashed_at = time.perf_counter()
                raise RuntimeError("boom (bench)")


@dataclass(frozen=True, slots=True)
class Event:
    seq: int


# --- measurements -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` operations over ``wall`` seconds, of which ``cpu`` seconds were this process's CPU time.

    The per-CPU-second rate is the one to compare across runs when other processes share the box.
    """

    count: int
    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.count / self.wall:>11,.0f}/s ({self.count / self.cpu:>11,.0f} per CPU-s)"


class Stopwatch:
    """Wall and process CPU time since construction."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rate(self, count: int) -> Rate:
        return Rate(count, time.perf_counter() - self.wall, time.process_time() - self.cpu)


async def bench_ask(seconds: float, askers: int) -> Rate:
    """Ask round trips per second with ``askers`` concurrent callers of one actor."""
    done = 0
    async with open_actor(Counter, name="ask") as ref:
        deadline = time.perf_counter() + seconds

        async def asker() -> None:
            nonlocal done
            n = 0
            while time.perf_counter() < deadline:
                for _ in range(100):
                    await ref.ask(Ping)
                n += 100
            done += n

        watch = Stopwatch()
        async with trio.open_nursery() as nursery:
            for _ in range(askers):
                nursery.start_soon(asker)
        rate = watch.rate(done)
    return rate


async def bench_tell(seconds: float, senders: int) -> Rate:
    """Tell messages per second (sent and handled) with ``senders`` concurrent senders to one actor."""
    bump = Bump()
    sent = 0
    async with open_actor(Counter, name="tell") as ref:
        deadline = time.perf_counter() + seconds

        async def sender() -> None:
            nonlocal sent
            while time.perf_counter() < deadline:
                for _ in range(1000):
                    await ref.tell(bump)
                sent += 1000

        watch = Stopwatch()
        async with trio.open_nursery() as nursery:
            for _ in range(senders):
                nursery.start_soon(sender)
        handled = await ref.ask(Count)  # FIFO: every tell before it is handled once this returns
        rate = watch.rate(handled)
    assert handled == sent, (handled, sent)
    return rate


async def bench_restart(restarts: int) -> tuple[float, float]:
    """p50 and p99 (ms) from a crash in ``handle`` to the new incarnation running, zero backoff."""
    latencies: list[float] = []
    restarted = trio.Event()

    def on_event(event: RuntimeEvent) -> None:
        nonlocal restarted
        if isinstance(event, ChildRestarted):
            latencies.append(time.perf_counter() - Counter.crashed_at)
            restarted.set()

    spec = worker("crasher", Counter)
    tree = Supervisor(
        supervisor(
            "bench",
            [spec],
            intensity=Intensity(max_restarts=10 * restarts, within=60.0),
            backoff=Backoff(min=0.0),
        ),
        on_event=on_event,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(tree.run)
        for _ in range(restarts):
            restarted = trio.Event()
            spec.ref.tell_nowait(Boom())
            await restarted.wait()
        await tree.stop()
    latencies.sort()
    return latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000


async def bench_broadcast(seconds: float, subscribers: int, burst: int) -> tuple[Rate, int]:
    """Deliveries per second (events received by subscriber tasks) and the number of lagged subscribers."""
    broadcast: Broadcast[Event] = Broadcast(capacity=4 * burst + 64)
    received = 0

    async def consume(sub: Subscription[Event], task_status: trio.TaskStatus[None]) -> None:
        nonlocal received
        n = 0
        task_status.started()
        with sub:
            async for batch in sub:
                n += len(batch)
        received += n

    async with trio.open_nursery() as nursery:
        for _ in range(subscribers):
            await nursery.start(consume, broadcast.subscribe(["bench.event"]))
        events = [Event(seq) for seq in range(burst)]
        deadline = time.perf_counter() + seconds
        watch = Stopwatch()
        while time.perf_counter() < deadline:
            for event in events:
                broadcast.publish("bench.event", event)
            await trio.lowlevel.checkpoint()
        broadcast.close()
    rate = watch.rate(received)
    stats = broadcast.statistics()
    assert received == stats.delivered, (received, stats)
    return rate, stats.lagged


# --- driver -----------------------------------------------------------------------------------------------


async def main(seconds: float, restarts: int) -> None:
    for askers in (1, 100):
        print(f"ask round trips, {askers:>4} askers:           {await bench_ask(seconds, askers)}")
    for senders in (1, 100):
        print(f"tell messages,   {senders:>4} senders:          {await bench_tell(seconds, senders)}")
    p50, p99 = await bench_restart(restarts)
    print(f"restart crash->running ({restarts} restarts): p50 {p50:.3f} ms  p99 {p99:.3f} ms")
    for subscribers in (1, 100, 1000):
        for burst in (1, 16, 100):
            rate, lagged = await bench_broadcast(seconds, subscribers, burst)
            note = f"  ({lagged} lagged)" if lagged else ""
            print(f"broadcast deliveries, {subscribers:>4} subs, burst {burst:>3}: {rate}{note}")


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each throughput run")
    parser.add_argument("--restarts", type=int, default=2000)
    parser.add_argument("--gc-tune", action="store_true", help="gc.freeze() + gen-0 threshold 100,000")
    args = parser.parse_args()
    # Each crash is logged at ERROR; keep the record (as a real node would) but not the stderr flood.
    sup_log = logging.getLogger("runtime.supervisor")
    sup_log.addHandler(logging.NullHandler())
    sup_log.propagate = False
    if args.gc_tune:
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
    print(f"gc tuned: {args.gc_tune}")
    trio.run(main, args.seconds, args.restarts)


if __name__ == "__main__":
    cli()
