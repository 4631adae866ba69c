"""Many workers claiming at once never get the same task, and every task completes exactly once."""

from __future__ import annotations

import random
from collections import Counter
from functools import partial
from pathlib import Path

import trio
import trio.lowlevel

from actors.dispatcher.messages import DispatchBatch, ListEvents, TaskSpec, TaskStatus

from .harness import running_dispatcher

TASKS = 400
WORKERS = 25


async def test_concurrent_claimers_never_share_a_task_and_each_task_completes_once(db_path: Path) -> None:
    async with running_dispatcher(db_path) as d:
        claims: list[str] = []
        done = trio.Event()

        async def producer() -> None:
            for start in range(0, TASKS, 50):  # batches and singles interleaved with the claims
                if start % 100:
                    specs = [TaskSpec(core_id="c", priority=random.randint(0, 3)) for _ in range(50)]
                    await d.ref.ask(partial(DispatchBatch, specs))
                else:
                    for _ in range(50):
                        await d.dispatch("c", priority=random.randint(0, 3))
                await trio.lowlevel.checkpoint()

        async def worker(name: str) -> None:
            while not done.is_set():
                claimed = None
                with trio.move_on_after(0.5):  # long-poll, then look whether all is done
                    claimed = await d.claim("c", worker=name, lease=600.0)
                if claimed is None:
                    continue
                claims.append(claimed.task.id)
                if random.random() < 0.5:
                    await d.report(claimed, "running")
                await d.report(claimed, "succeeded")
                if len(claims) == TASKS:
                    done.set()

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for i in range(WORKERS):
                    nursery.start_soon(worker, f"w{i}")
                nursery.start_soon(producer)
                await done.wait()

        assert len(claims) == len(set(claims)) == TASKS
        events = await d.ref.ask(lambda r: ListEvents(r, limit=10_000))
        per_type = Counter(e.type for e in events)
        # a claim written for a poller that timed out meanwhile is given back (claimed, then queued again)
        given_back = sum(
            1 for e in events if e.type == "task.queued" and e.data["reason"] == "claim_abandoned"
        )
        assert per_type["task.queued"] - given_back == TASKS
        assert per_type["task.claimed"] - given_back == TASKS
        assert per_type["task.succeeded"] == TASKS
        succeeded_once = Counter(e.subject for e in events if e.type == "task.succeeded")
        assert set(succeeded_once) == set(claims) and set(succeeded_once.values()) == {1}
        for task_id in random.sample(claims, 20):
            assert (await d.get(task_id)).status is TaskStatus.SUCCEEDED
