"""Would the storage writer in its own process beat the writer thread? A probe for a design question.

    .venv/bin/python bench/writer_process_probe.py [--main-us 28] [--batches 120] [--runs 3]

The node's writer-bound targets (``dispatch-batch``, ``ws-cycle``) run at ~1 / (main thread CPU + writer
CPU) per task: Python 3.11's sqlite3 module takes the GIL back after every SQLite call, so the writer
thread waits whenever the main thread runs Python (bench/RESULTS.md, session 9). This probe runs the
dispatcher's real dispatch write op (``sqlite_commands.execute`` of ``DispatchCmd``s, 500 tasks a
commit, ``synchronous=FULL``) on a real SQLite file, two batches in flight, next to a main thread that
spends ``--main-us`` of Python per task (a stand-in for parsing requests and writing answers, with a
system call every ~100 us as the socket writes have), in three ways:

* ``thread``: the writer in a thread of this process, as the node does it (DESIGN §3);
* ``process``: the writer in a child process, commands and full results pickled through a pipe;
* ``compact``: the same, but the child answers with task ids and the first event seq only (what the
  main process would need to rebuild the answers it already knows the rest of).

Prints tasks/s and the CPU used (this process plus the child; 100 % = one core), median over ``--runs``
alternating rounds, and what pickling costs per task.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import queue
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from actors.dispatcher import sqlite_commands
from actors.dispatcher.messages import TaskSpec
from actors.dispatcher.schema import MIGRATIONS
from actors.dispatcher.sqlite_ops import Rules
from actors.dispatcher.store import DispatchCmd
from actors.storage.events import Tx
from actors.storage.schema import migrate_component, upgrade_storage_schema
from actors.storage.sqlite import connect

BATCH = 500  # tasks a commit: what `dispatch-batch --clients 16` commits at a time
MODES = ("thread", "process", "compact")


class Writer:
    """The writer connection and the dispatch op, as the node's writer thread runs them."""

    def __init__(self, directory: str) -> None:
        self.conn = connect(Path(directory) / "probe.db", synchronous="FULL", query_only=False)
        self.conn.execute("PRAGMA cache_size = -16384")  # the node's WRITER_CACHE_KIB
        upgrade_storage_schema(self.conn)
        self.conn.execute("BEGIN IMMEDIATE")
        migrate_component(self.conn, "dispatcher", MIGRATIONS)
        self.conn.execute("COMMIT")
        self.rules = Rules()
        self.commits = 0

    def write(self, commands: list[DispatchCmd]) -> tuple[list[Any], list[Any]]:
        tx = Tx(self.conn)
        self.conn.execute("BEGIN IMMEDIATE")
        results = sqlite_commands.execute(tx, self.rules, commands, time.time())
        self.conn.execute("COMMIT")
        self.commits += 1
        if self.commits % 10 == 0:  # the node's checkpointer keeps the WAL short (in its own thread)
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return results, tx._finish()


def compact(written: tuple[list[Any], list[Any]]) -> tuple[list[list[str]], int]:
    results, events = written
    return [[item.task.id for item in outcome.value] for outcome in results], events[0].seq


def commands_for(batch: int) -> list[DispatchCmd]:
    commands = []
    for request in range(BATCH // 100):
        base = batch * BATCH + request * 100
        specs = [
            TaskSpec(core_id=f"BENCH_{(base + i) % 16:02d}", priority=i % 5, metadata={"bench_seq": base + i})
            for i in range(100)
        ]
        commands.append(DispatchCmd(specs, [orjson.dumps(spec.metadata).decode() for spec in specs]))
    return commands


class MainWork:
    """Python work for ``us`` microseconds of wall time, with a write(2) every ~100 us."""

    def __init__(self) -> None:
        self._fd = os.open(os.devnull, os.O_WRONLY)

    def run(self, us: float) -> None:
        end = time.perf_counter() + us / 1e6
        while True:
            total = 0
            for i in range(300):
                total += i
            os.write(self._fd, b"x")
            if time.perf_counter() >= end:
                return


def child_main(conn: Connection, directory: str, compact_answers: bool) -> None:
    writer = Writer(directory)
    while message := conn.recv_bytes():
        written = writer.write(pickle.loads(message))
        conn.send_bytes(pickle.dumps(compact(written) if compact_answers else written, protocol=5))


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def one_round(mode: str, main_us: float, batches: int) -> tuple[float, float, float]:
    """Returns (tasks/s, CPU %, pickling in this process in us a task)."""
    directory = tempfile.mkdtemp(prefix="orch-probe-")
    work = MainWork()
    pickling = 0.0
    stop: Callable[[], None]
    if mode == "thread":
        writer = Writer(directory)
        jobs: queue.Queue[list[DispatchCmd] | None] = queue.Queue()
        answers: queue.Queue[object] = queue.Queue()

        def run_writer() -> None:
            while (commands := jobs.get()) is not None:
                answers.put(writer.write(commands))

        thread = threading.Thread(target=run_writer)
        thread.start()
        send: Callable[[list[DispatchCmd]], None] = jobs.put
        receive: Callable[[], object] = answers.get

        def stop() -> None:
            jobs.put(None)
            thread.join()
    else:
        ours, theirs = multiprocessing.Pipe()
        child = multiprocessing.get_context("fork").Process(
            target=child_main, args=(theirs, directory, mode == "compact")
        )
        child.start()

        def send(commands: list[DispatchCmd]) -> None:
            nonlocal pickling
            started = time.perf_counter()
            data = pickle.dumps(commands, protocol=5)
            pickling += time.perf_counter() - started
            ours.send_bytes(data)

        def receive() -> object:
            nonlocal pickling
            data = ours.recv_bytes()
            started = time.perf_counter()
            answer = pickle.loads(data)
            pickling += time.perf_counter() - started
            return answer

        def stop() -> None:
            ours.send_bytes(b"")
            child.join()

    cpu_before, started, in_flight = cpu_seconds(), time.perf_counter(), 0
    for batch in range(batches):
        commands = commands_for(batch)
        work.run(main_us * BATCH / 2)  # reading and checking the requests
        send(commands)
        in_flight += 1
        if in_flight == 2:  # two batches in flight, like the dispatcher's two flushers
            receive()
            in_flight -= 1
            work.run(main_us * BATCH / 2)  # writing the answers
    for _ in range(in_flight):
        receive()
    elapsed = time.perf_counter() - started
    stop()
    cpu = cpu_seconds() - cpu_before
    tasks = batches * BATCH
    return tasks / elapsed, cpu / elapsed * 100, pickling / tasks * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--main-us", type=float, default=28.0, help="main-thread Python a task (default 28)")
    parser.add_argument("--batches", type=int, default=120, help="commits of 500 tasks per round")
    parser.add_argument("--runs", type=int, default=3, help="alternating rounds of the three modes")
    args = parser.parse_args()
    figures: dict[str, list[tuple[float, float, float]]] = {mode: [] for mode in MODES}
    for _ in range(args.runs):
        for mode in MODES:
            figures[mode].append(one_round(mode, args.main_us, args.batches))
    print(f"main thread {args.main_us:.0f} us of Python a task, {args.batches} commits of {BATCH} tasks")
    for mode, rounds in figures.items():
        rate = statistics.median(r[0] for r in rounds)
        cpu = statistics.median(r[1] for r in rounds)
        pickling = statistics.median(r[2] for r in rounds)
        runs = " / ".join(f"{r[0]:,.0f}" for r in rounds)
        print(f"{mode:8} {rate:8,.0f} tasks/s ({runs})  cpu {cpu:4.0f} %  pickling {pickling:5.1f} us a task")


if __name__ == "__main__":
    main()
