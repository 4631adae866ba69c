"""Dispatch: durable acknowledgement, batches, idempotency keys, validation, estimated start."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from actors.dispatcher.messages import (
    DispatchBatch,
    InvalidTask,
    TaskSpec,
    TaskStatus,
)
from actors.dispatcher.sqlite_ops import Rules

from .harness import LONG, QUIET, Harness, running_dispatcher, trio_clock


async def test_acknowledged_dispatch_is_stored_with_its_queued_event(dispatcher: Harness) -> None:
    accepted = await dispatcher.dispatch("WORK_AI_01", priority=3, metadata={"x": 1}, stay=True, timeout=9.0)
    assert accepted.created
    task = await dispatcher.get(accepted.task.id)
    assert task.status is TaskStatus.QUEUED
    assert (task.core_id, task.priority, task.metadata, task.stay, task.timeout_s) == (
        "WORK_AI_01", 3, {"x": 1}, True, 9.0,
    )  # fmt: skip
    assert await dispatcher.event_types(task.id) == ["task.queued"]
    published = [e for e in dispatcher.published if e.subject == task.id]
    assert [(e.type, e.core_id) for e in published] == [("task.queued", "WORK_AI_01")]


async def test_batch_dispatch_stores_every_task_in_order(dispatcher: Harness) -> None:
    specs = [TaskSpec(core_id="c", metadata={"i": i}) for i in range(50)]
    accepted = await dispatcher.ref.ask(lambda r: DispatchBatch(specs, r))
    assert [a.task.metadata["i"] for a in accepted] == list(range(50))
    assert [a.queue_position for a in accepted] == list(range(50))
    claimed = [await dispatcher.claim("c") for _ in range(50)]
    assert [c.task.metadata["i"] for c in claimed] == list(range(50))


async def test_queue_position_counts_the_tasks_of_at_least_its_priority_queued_before_it(
    dispatcher: Harness,
) -> None:
    earlier = [TaskSpec(core_id=core, priority=p) for core in ("a", "b") for p in (0, 2, 5, 2)]
    await dispatcher.ref.ask(lambda r: DispatchBatch(earlier, r))
    keyed = TaskSpec(core_id="a", priority=2, idempotency_key="k")
    await dispatcher.ref.ask(lambda r: DispatchBatch([keyed], r))
    batch = [TaskSpec(core_id=core, priority=(i * 7) % 6 - 1) for i, core in enumerate("abab" * 6)]
    batch.insert(5, keyed)  # the existing task: not counted again, and not ahead of itself
    accepted = await dispatcher.ref.ask(lambda r: DispatchBatch(batch, r))
    queued = [*earlier, keyed]
    expected = []
    for spec, answer in zip(batch, accepted, strict=True):
        if answer.created:
            expected.append(sum(q.core_id == spec.core_id and q.priority >= spec.priority for q in queued))
            queued.append(spec)
        else:
            expected.append(sum(q.core_id == "a" and q.priority >= 2 for q in queued) - 1)
    assert [a.queue_position for a in accepted] == expected
    assert not accepted[5].created and accepted[5].queue_position == 4


async def test_batch_with_one_bad_spec_is_refused_whole(dispatcher: Harness) -> None:
    specs = [TaskSpec(core_id="c"), TaskSpec(core_id="c", priority=1000)]
    with pytest.raises(InvalidTask):
        await dispatcher.ref.ask(lambda r: DispatchBatch(specs, r))
    stats = await dispatcher.store.counts(0.0)
    assert stats == []


async def test_same_idempotency_key_on_same_core_returns_the_existing_task(dispatcher: Harness) -> None:
    first = await dispatcher.dispatch("c", idempotency_key="order-17")
    again = await dispatcher.dispatch("c", idempotency_key="order-17", priority=9)
    other_core = await dispatcher.dispatch("d", idempotency_key="order-17")
    assert not again.created
    assert again.task.id == first.task.id
    assert again.task.priority == 0
    assert other_core.created and other_core.task.id != first.task.id
    assert await dispatcher.event_types(first.task.id) == ["task.queued"]


async def test_concurrent_dispatches_with_one_key_create_one_task(dispatcher: Harness) -> None:
    ids: list[str] = []

    async def send() -> None:
        ids.append((await dispatcher.dispatch("c", idempotency_key="k")).task.id)

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(send)
    assert len(set(ids)) == 1


async def test_idempotency_key_is_free_again_after_its_window(db_path: Path, clock: trio.abc.Clock) -> None:
    async with running_dispatcher(db_path, config=QUIET, rules=Rules(idempotency_window_s=60.0)) as d:
        first = await d.dispatch("c", idempotency_key="k")
        await trio.sleep(61)
        second = await d.dispatch("c", idempotency_key="k")
        assert second.created and second.task.id != first.task.id
        assert (await d.get(first.task.id)).idempotency_key is None


async def test_invalid_dispatch_is_a_domain_error_and_the_actor_keeps_running(dispatcher: Harness) -> None:
    with pytest.raises(InvalidTask):
        await dispatcher.dispatch("c", max_attempts=0)
    assert (await dispatcher.dispatch("c")).created


async def test_estimated_start_follows_queue_position_and_completion_rate(dispatcher: Harness) -> None:
    # Real time on purpose: the completions must all fall in the one-minute rate window.
    for _ in range(10):
        await dispatcher.dispatch("c")
    unknown = await dispatcher.dispatch("c")
    assert unknown.estimated_start is None  # no throughput seen yet
    for _ in range(11):
        claimed = await dispatcher.claim("c")
        await dispatcher.report(claimed, "succeeded")
    for _ in range(20):
        await dispatcher.dispatch("c")
    accepted = await dispatcher.dispatch("c")
    assert accepted.queue_position == 20
    assert accepted.estimated_start is not None
    now = accepted.task.created_at
    rate = 11 / 60  # completions per second over the one-minute window
    assert accepted.estimated_start - now == pytest.approx(21 / rate)
    urgent = await dispatcher.dispatch("c", priority=5)
    assert urgent.queue_position == 0


async def test_estimated_start_is_now_when_a_worker_is_waiting(dispatcher: Harness) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dispatcher.claim, "c")
        await trio.testing.wait_all_tasks_blocked()
        accepted = await dispatcher.dispatch("c")
    assert accepted.estimated_start == accepted.task.created_at


async def test_delayed_dispatch_waits_for_not_before(
    quiet_dispatcher: Harness, clock: trio.abc.Clock
) -> None:
    start = trio.current_time()
    accepted = await quiet_dispatcher.dispatch("c", not_before=trio_clock() + 30.0)
    assert accepted.task.status is TaskStatus.QUEUED
    claimed = await quiet_dispatcher.claim("c", lease=LONG)
    assert claimed.task.id == accepted.task.id
    assert trio.current_time() - start >= 30.0


async def test_payload_that_is_not_json_is_refused_before_it_reaches_the_store(dispatcher: Harness) -> None:
    with pytest.raises(InvalidTask, match="metadata"):
        await dispatcher.dispatch("c", metadata={"when": object()})
    with pytest.raises(InvalidTask, match="metadata"):
        await dispatcher.dispatch("c", metadata={"x": float("nan")})
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c")
    with pytest.raises(InvalidTask, match="result"):
        await dispatcher.report(claimed, "succeeded", result={"bad": {1, 2}})
    with pytest.raises(InvalidTask, match="progress"):
        await dispatcher.heartbeat(claimed, progress={"bad": b"bytes"})
    assert (await dispatcher.report(claimed, "succeeded", result={"ok": 1})).result == {"ok": 1}


async def test_batch_mixing_plain_and_keyed_or_timed_specs_keeps_order_and_columns(
    dispatcher: Harness,
) -> None:
    # Plain specs are inserted without binding None; runs of each statement shape must keep dispatch order.
    specs = [
        TaskSpec(core_id="c", metadata={"i": 0}),
        TaskSpec(core_id="c", metadata={"i": 1}, timeout=5.0),
        TaskSpec(core_id="c", metadata={"i": 2}, idempotency_key="k2"),
        TaskSpec(core_id="c", metadata={"i": 3}),
        TaskSpec(core_id="c", metadata={"i": 4}),
        TaskSpec(core_id="c", metadata={"i": 5}, timeout=1.5, idempotency_key="k5"),
    ]
    accepted = await dispatcher.ref.ask(lambda r: DispatchBatch(specs, r))
    rows = await dispatcher.db.read(
        lambda conn: conn.execute("SELECT id, timeout_s, idempotency_key FROM tasks ORDER BY seq").fetchall()
    )
    assert [row[0] for row in rows] == [a.task.id for a in accepted]
    assert [row[1:] for row in rows] == [
        (None, None), (5.0, None), (None, "k2"), (None, None), (None, None), (1.5, "k5"),
    ]  # fmt: skip
    stored = [await dispatcher.get(a.task.id) for a in accepted]
    assert [(t.timeout_s, t.idempotency_key) for t in stored] == [
        (s.timeout, s.idempotency_key) for s in specs
    ]
