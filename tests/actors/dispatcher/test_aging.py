"""Priority aging: a low-priority task is claimed within its bound under a constant stream of higher ones."""

from __future__ import annotations

from pathlib import Path

import trio

from actors.dispatcher.policy import AgingRule
from actors.dispatcher.sqlite_ops import Rules

from .harness import running_dispatcher

AGING = AgingRule(interval_s=1.0)
HIGH = 10


async def test_low_priority_task_is_overtaken_only_within_its_aging_window(
    db_path: Path, clock: trio.abc.Clock
) -> None:
    async with running_dispatcher(db_path, rules=Rules(aging=AGING)) as d:
        claimed: list[tuple[int, float]] = []  # (priority, created_at) in claim order

        async def producer() -> None:
            while True:  # 2 high tasks per second: more than the worker can take
                await d.dispatch("c", priority=HIGH)
                await d.dispatch("c", priority=HIGH)
                await trio.sleep(1.0)

        async def worker() -> None:
            while True:
                task = await d.claim("c")
                claimed.append((task.task.priority, task.task.created_at))
                await d.report(task, "succeeded")
                if task.task.priority == 0:
                    return
                await trio.sleep(1.0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(producer)
            await trio.sleep(3.5)  # a backlog of high-priority work exists
            low = await d.dispatch("c", priority=0)
            with trio.fail_after(600):  # virtual seconds: generous, slow writes let the clock run ahead
                await worker()
            nursery.cancel_scope.cancel()

    window = AGING.overtake_window(0, max_priority=HIGH)
    assert window == 10.0
    before_low = claimed[:-1]
    assert claimed[-1] == (0, low.task.created_at)
    # Nothing that became eligible after the window closed was claimed before the low task...
    assert all(created < low.task.created_at + window for _, created in before_low)
    # ...while high-priority tasks from inside the window did overtake it (priority still matters).
    assert any(created > low.task.created_at for _, created in before_low)
