"""Worker batches: ClaimMany (prefetch), HeartbeatMany and ReportMany (per-item answers)."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
import trio
import trio.testing

from actors.dispatcher.messages import (
    ClaimedTask,
    ClaimMany,
    DispatchBatch,
    HeartbeatAck,
    HeartbeatItem,
    HeartbeatMany,
    InvalidTask,
    ReportItem,
    ReportMany,
    ReportStatus,
    StaleLease,
    TaskNotFound,
    TaskSpec,
    TaskStatus,
    TaskView,
)

from .harness import LONG, Harness

OK = ReportStatus.SUCCEEDED


async def claim_many(d: Harness, n: int, core: str = "c", worker: str = "w1") -> tuple[ClaimedTask, ...]:
    claimed: tuple[ClaimedTask, ...] = await d.ref.ask(
        lambda r: ClaimMany(core, worker, r, max=n, lease=LONG)
    )
    return claimed


async def heartbeats(d: Harness, *items: HeartbeatItem) -> tuple[HeartbeatAck | Exception, ...]:
    answers: tuple[HeartbeatAck | Exception, ...] = await d.ref.ask(lambda r: HeartbeatMany(items, r))
    return answers


async def reports(d: Harness, *items: ReportItem) -> tuple[TaskView | Exception, ...]:
    answers: tuple[TaskView | Exception, ...] = await d.ref.ask(lambda r: ReportMany(items, r))
    return answers


async def test_claim_many_takes_up_to_max_tasks_best_rank_first(dispatcher: Harness) -> None:
    low = await dispatcher.dispatch("c", priority=0)
    high = await dispatcher.dispatch("c", priority=5)
    mid = await dispatcher.dispatch("c", priority=2)
    claimed = await claim_many(dispatcher, 2)
    assert [c.task.id for c in claimed] == [high.task.id, mid.task.id]
    assert all(c.task.status is TaskStatus.CLAIMED and c.task.claimed_by == "w1" for c in claimed)
    assert len({c.lease_token for c in claimed}) == 2  # one lease per task
    rest = await claim_many(dispatcher, 10)
    assert [c.task.id for c in rest] == [low.task.id]  # fewer than max: what there is, at once


async def test_claim_many_waits_for_at_least_one_task(dispatcher: Harness) -> None:
    got: list[tuple[ClaimedTask, ...]] = []

    async def worker() -> None:
        got.append(await claim_many(dispatcher, 5))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker)
        for _ in range(5):
            await trio.testing.wait_all_tasks_blocked()
        assert got == []
        accepted = await dispatcher.dispatch("c")
    assert [c.task.id for c in got[0]] == [accepted.task.id]


async def test_claim_many_gives_up_at_the_askers_deadline(dispatcher: Harness, clock: Any) -> None:
    with trio.move_on_after(30) as scope:
        await claim_many(dispatcher, 3)
    assert scope.cancelled_caught
    accepted = await dispatcher.dispatch("c")
    assert (await dispatcher.get(accepted.task.id)).status is TaskStatus.QUEUED


async def test_claim_many_and_single_claims_share_the_line_in_arrival_order(dispatcher: Harness) -> None:
    served: dict[str, list[str]] = {}

    async def many() -> None:
        served["many"] = [c.task.id for c in await claim_many(dispatcher, 2, worker="wm")]

    async def single() -> None:
        served["single"] = [(await dispatcher.claim("c", worker="ws")).task.id]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(many)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(single)
        await trio.testing.wait_all_tasks_blocked()
        accepted = await dispatcher.ref.ask(lambda r: DispatchBatch([TaskSpec("c")] * 3, r))
    ids = [a.task.id for a in accepted]
    assert served == {"many": ids[:2], "single": ids[2:]}


async def test_claim_many_asker_gone_while_written_gives_every_task_back(dispatcher: Harness) -> None:
    first = await dispatcher.dispatch("c")
    second = await dispatcher.dispatch("c")
    entered, release = threading.Event(), threading.Event()

    def hold_writer(tx: object) -> None:
        entered.set()
        release.wait(10)

    async def gone(scope: trio.CancelScope) -> None:
        with scope:
            await claim_many(dispatcher, 2, worker="gone")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(dispatcher.db.write, hold_writer)
        await trio.to_thread.run_sync(entered.wait, 10)
        asker = trio.CancelScope()
        nursery.start_soon(gone, asker)
        await trio.testing.wait_all_tasks_blocked()
        asker.cancel()
        await trio.testing.wait_all_tasks_blocked()
        release.set()
    with trio.fail_after(5):
        claimed = await claim_many(dispatcher, 2, worker="w2")
    assert sorted(c.task.id for c in claimed) == sorted([first.task.id, second.task.id])
    assert all(c.task.attempts == 1 for c in claimed)  # the lost claims were not counted


@pytest.mark.parametrize("n", [0, 1001])
async def test_claim_many_refuses_a_max_out_of_range(dispatcher: Harness, n: int) -> None:
    with pytest.raises(InvalidTask):
        await claim_many(dispatcher, n)


async def test_heartbeat_many_answers_each_item_and_a_stale_one_does_not_fail_the_others(
    dispatcher: Harness,
) -> None:
    for _ in range(2):
        await dispatcher.dispatch("c")
    a, b = await claim_many(dispatcher, 2)
    answers = await heartbeats(
        dispatcher,
        HeartbeatItem(a.task.id, a.lease_token, lease=50.0),
        HeartbeatItem(b.task.id, "f" * 32),
        HeartbeatItem("nope", "x"),
        HeartbeatItem(b.task.id, b.lease_token, progress={"pct": 50}),
        HeartbeatItem(a.task.id, a.lease_token, lease=math.nan),
    )
    assert isinstance(answers[0], HeartbeatAck) and answers[0].task_id == a.task.id
    assert isinstance(answers[1], StaleLease)
    assert isinstance(answers[2], TaskNotFound)
    assert isinstance(answers[3], HeartbeatAck) and not answers[3].cancel_requested
    assert isinstance(answers[4], InvalidTask)  # refused before the write, in its place
    task_a = await dispatcher.get(a.task.id)
    assert task_a.lease_expires_at == pytest.approx(answers[0].lease_expires_at)
    assert (await dispatcher.get(b.task.id)).progress == {"pct": 50}
    assert await dispatcher.event_types(b.task.id) == ["task.queued", "task.claimed", "task.progress"]
    assert await dispatcher.event_types(a.task.id) == ["task.queued", "task.claimed"]  # no event


async def test_heartbeat_tells_of_a_cancel_request(dispatcher: Harness) -> None:
    await dispatcher.dispatch("c")
    (held,) = await claim_many(dispatcher, 1)
    await dispatcher.cancel(held.task.id)
    (ack,) = await heartbeats(dispatcher, HeartbeatItem(held.task.id, held.lease_token))
    assert isinstance(ack, HeartbeatAck) and ack.cancel_requested


async def test_report_many_applies_each_item_on_its_own(dispatcher: Harness) -> None:
    for _ in range(3):
        await dispatcher.dispatch("c", max_attempts=1)
    a, b, c = await claim_many(dispatcher, 3)
    answers = await reports(
        dispatcher,
        ReportItem(a.task.id, a.lease_token, OK, result={"n": 1}),
        ReportItem(b.task.id, "0" * 32, OK),
        ReportItem(c.task.id, c.lease_token, ReportStatus.FAILED, error="boom"),
        ReportItem(b.task.id, b.lease_token, OK, result={"bad": math.inf}),
    )
    assert isinstance(answers[0], TaskView) and answers[0].status is TaskStatus.SUCCEEDED
    assert answers[0].result == {"n": 1}
    assert isinstance(answers[1], StaleLease)
    assert isinstance(answers[2], TaskView) and answers[2].status is TaskStatus.DEAD
    assert isinstance(answers[3], InvalidTask)
    assert (await dispatcher.get(b.task.id)).status is TaskStatus.CLAIMED  # untouched by the refusals


async def test_report_many_repeat_of_a_final_report_answers_the_same_and_never_completes_twice(
    dispatcher: Harness,
) -> None:
    await dispatcher.dispatch("c")
    (held,) = await claim_many(dispatcher, 1)
    item = ReportItem(held.task.id, held.lease_token, OK, result={"x": 1})
    first, again = await reports(dispatcher, item, item)
    assert isinstance(first, TaskView) and isinstance(again, TaskView)
    assert first.status is again.status is TaskStatus.SUCCEEDED
    types = await dispatcher.event_types(held.task.id)
    assert types.count("task.succeeded") == 1


async def test_report_many_with_every_item_refused_answers_without_a_write(dispatcher: Harness) -> None:
    answers = await reports(dispatcher, ReportItem("t", "k", OK, result={"x": math.nan}))
    assert len(answers) == 1 and isinstance(answers[0], InvalidTask)


@pytest.mark.parametrize("n", [0, 1001])
async def test_batches_refuse_too_few_or_too_many_items(dispatcher: Harness, n: int) -> None:
    with pytest.raises(InvalidTask):
        await heartbeats(dispatcher, *[HeartbeatItem("t", "k")] * n)
    with pytest.raises(InvalidTask):
        await reports(dispatcher, *[ReportItem("t", "k", OK)] * n)
