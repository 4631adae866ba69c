"""Reads: task pages with filters and cursors, event listings, queue statistics."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from actors.dispatcher.messages import InvalidTask, ListEvents, ListTasks, QueueStats, TaskStatus

from .harness import Harness


async def test_list_tasks_pages_newest_first_with_filters(dispatcher: Harness) -> None:
    ids = [(await dispatcher.dispatch("a" if i % 2 else "b")).task.id for i in range(7)]
    claimed = await dispatcher.claim("a")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await dispatcher.ref.ask(partial(ListTasks, core_id="a", cursor=cursor, limit=2))
        seen.extend(t.id for t in page.tasks)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [ids[5], ids[3], ids[1]]
    page = await dispatcher.ref.ask(lambda r: ListTasks(r, statuses=frozenset({TaskStatus.CLAIMED})))
    assert [t.id for t in page.tasks] == [claimed.task.id]
    everything = await dispatcher.ref.ask(lambda r: ListTasks(r, limit=1000))
    assert [t.id for t in everything.tasks] == ids[::-1]
    assert everything.next_cursor is None


async def test_list_tasks_refuses_a_bad_cursor_or_limit(dispatcher: Harness) -> None:
    with pytest.raises(InvalidTask):
        await dispatcher.ref.ask(lambda r: ListTasks(r, cursor="x"))
    with pytest.raises(InvalidTask):
        await dispatcher.ref.ask(lambda r: ListTasks(r, limit=0))


async def test_list_events_of_all_tasks_after_a_seq(dispatcher: Harness) -> None:
    first = await dispatcher.dispatch("a")
    events = await dispatcher.ref.ask(lambda r: ListEvents(r))
    mark = events[-1].seq
    second = await dispatcher.dispatch("b")
    await dispatcher.claim("b")
    later = await dispatcher.ref.ask(lambda r: ListEvents(r, after_seq=mark))
    assert [(e.type, e.subject) for e in later] == [
        ("task.queued", second.task.id), ("task.claimed", second.task.id),
    ]  # fmt: skip
    assert [e.seq for e in later] == sorted(e.seq for e in later)
    only_a = await dispatcher.ref.ask(lambda r: ListEvents(r, core_id="a"))
    assert [e.subject for e in only_a] == [first.task.id]


async def test_queue_stats_show_depth_per_priority_age_and_throughput(
    dispatcher: Harness, clock: trio.abc.Clock
) -> None:
    await dispatcher.dispatch("a", priority=1)
    await trio.sleep(10)
    for _ in range(3):
        await dispatcher.dispatch("a", priority=2)
    await dispatcher.dispatch("b")
    for _ in range(2):
        claimed = await dispatcher.claim("a")
        await dispatcher.report(claimed, "succeeded")
    running = await dispatcher.claim("b")
    await dispatcher.report(running, "running")
    await trio.sleep(5)
    stats = await dispatcher.ref.ask(lambda r: QueueStats(r))
    a, b = stats.cores
    # the priority-1 task waited 10 s: worth more than one priority step (1 s), so it went first
    assert (a.core_id, a.queued, dict(a.queued_by_priority)) == ("a", 2, {2: 2})
    assert a.oldest_queued_age_s is not None and a.oldest_queued_age_s >= 5.0
    assert a.completions_per_s == pytest.approx(2 / 60)
    assert a.claims_per_s == pytest.approx(2 / 60)
    assert (b.core_id, b.queued, b.running, b.oldest_queued_age_s) == ("b", 0, 1, None)


async def test_events_are_published_after_commit_in_seq_order_as_stored(dispatcher: Harness) -> None:
    async with trio.open_nursery() as nursery:
        for i in range(30):
            nursery.start_soon(dispatcher.dispatch, f"core-{i % 3}")
    for _ in range(10):
        claimed = await dispatcher.claim("core-0")
        await dispatcher.report(claimed, "succeeded")
    stored = await dispatcher.ref.ask(lambda r: ListEvents(r))
    assert dispatcher.published == list(stored)
    assert [e.seq for e in stored] == sorted(e.seq for e in stored)
