"""Child process for the crash test: a dispatcher under load that prints every acknowledgement.

    python crash_child.py DB_PATH

Each line is written (unbuffered) only after the ask returned, i.e. after the commit:
``D <key> <task_id>`` for a dispatch, ``S <task_id> <status>`` for a status change. It runs until killed.
"""

from __future__ import annotations

import itertools
import os
import random
import sys
from functools import partial
from pathlib import Path

import trio

from actors.dispatcher.actor import DispatcherActor
from actors.dispatcher.messages import (
    Claim,
    Dispatch,
    DispatchBatch,
    DispatcherMsg,
    Report,
    ReportStatus,
    TaskSpec,
)
from actors.dispatcher.sqlite_store import SqliteTaskStore
from actors.storage import Database
from runtime import ActorRef, open_actor

_keys = itertools.count()


def ack(line: str) -> None:
    os.write(1, (line + "\n").encode())


async def dispatcher_client(ref: ActorRef[DispatcherMsg], name: str) -> None:
    while True:
        if random.random() < 0.2:
            keys = [f"{name}-{next(_keys)}" for _ in range(20)]
            specs = [TaskSpec(core_id="c", idempotency_key=k, max_attempts=2) for k in keys]
            accepted = await ref.ask(partial(DispatchBatch, specs))
            for key, a in zip(keys, accepted, strict=True):
                ack(f"D {key} {a.task.id}")
        else:
            key = f"{name}-{next(_keys)}"
            one = await ref.ask(partial(Dispatch, "c", idempotency_key=key, max_attempts=2))
            ack(f"D {key} {one.task.id}")


async def worker(ref: ActorRef[DispatcherMsg], name: str) -> None:
    while True:
        claimed = await ref.ask(lambda r: Claim("c", name, r, lease=600.0))
        task_id, token = claimed.task.id, claimed.lease_token
        ack(f"S {task_id} claimed")
        for status in (ReportStatus.RUNNING, random.choice([ReportStatus.SUCCEEDED, ReportStatus.FAILED])):
            view = await ref.ask(partial(Report, task_id, token, status, error="x"))
            ack(f"S {task_id} {view.status.value}")


async def main(path: Path) -> None:
    async with Database.open(path) as db:
        store = await SqliteTaskStore.open(db)
        async with (
            open_actor(lambda: DispatcherActor(store), name="dispatcher") as ref,
            trio.open_nursery() as n,
        ):
            for i in range(20):
                n.start_soon(dispatcher_client, ref, f"d{i}")
            for i in range(20):
                n.start_soon(worker, ref, f"w{i}")


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]))
