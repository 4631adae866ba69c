"""Claims: priority order, FIFO, long-poll, abandoned askers, delayed tasks."""

from __future__ import annotations

import threading

import pytest
import trio

from actors.dispatcher.messages import Claim, ClaimedTask, InvalidTask, Release, TaskStatus

from .harness import LONG, Harness, trio_clock


async def test_claim_takes_higher_priority_first_and_fifo_within_a_priority(dispatcher: Harness) -> None:
    low1 = await dispatcher.dispatch("c", priority=0)
    high1 = await dispatcher.dispatch("c", priority=5)
    low2 = await dispatcher.dispatch("c", priority=0)
    high2 = await dispatcher.dispatch("c", priority=5)
    order = [(await dispatcher.claim("c")).task.id for _ in range(4)]
    assert order == [high1.task.id, high2.task.id, low1.task.id, low2.task.id]


async def test_claim_is_per_core(dispatcher: Harness) -> None:
    await dispatcher.dispatch("a")
    b = await dispatcher.dispatch("b")
    assert (await dispatcher.claim("b")).task.id == b.task.id


async def test_claim_takes_a_lease_and_writes_the_claimed_event(dispatcher: Harness) -> None:
    accepted = await dispatcher.dispatch("c", timeout=60.0)
    claimed = await dispatcher.claim("c", worker="w7", lease=20.0)
    task = claimed.task
    assert task.status is TaskStatus.CLAIMED
    assert task.claimed_by == "w7"
    assert task.attempts == 1
    assert task.lease_expires_at is not None and task.deadline_at is not None
    assert task.lease_expires_at - task.updated_at == pytest.approx(20.0)
    assert task.deadline_at - task.updated_at == pytest.approx(60.0)
    assert len(claimed.lease_token) >= 32
    assert await dispatcher.event_types(accepted.task.id) == ["task.queued", "task.claimed"]
    assert (await dispatcher.get(task.id)).status is TaskStatus.CLAIMED


async def test_claim_waits_until_a_task_is_dispatched(dispatcher: Harness) -> None:
    got: list[ClaimedTask] = []

    async def worker() -> None:
        got.append(await dispatcher.claim("c"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker)
        for _ in range(5):
            await trio.testing.wait_all_tasks_blocked()
        assert got == []
        accepted = await dispatcher.dispatch("c")
    assert got[0].task.id == accepted.task.id


async def test_waiting_claims_are_served_in_arrival_order(dispatcher: Harness) -> None:
    served: list[str] = []

    async def worker(name: str) -> None:
        await dispatcher.claim("c", worker=name)
        served.append(name)

    async with trio.open_nursery() as nursery:
        for name in ("w1", "w2", "w3"):
            nursery.start_soon(worker, name)
            await trio.testing.wait_all_tasks_blocked()
        for _ in range(3):
            await dispatcher.dispatch("c")
    assert served == ["w1", "w2", "w3"]


async def test_claim_gives_up_at_the_askers_deadline(dispatcher: Harness, clock: trio.abc.Clock) -> None:
    with trio.move_on_after(30) as scope:
        await dispatcher.claim("c")
    assert scope.cancelled_caught
    accepted = await dispatcher.dispatch("c")
    task = await dispatcher.get(accepted.task.id)
    assert task.status is TaskStatus.QUEUED  # the gone asker did not take it
    assert (await dispatcher.claim("c")).task.id == accepted.task.id


async def test_asker_gone_while_its_claim_is_written_does_not_swallow_the_task(dispatcher: Harness) -> None:
    accepted = await dispatcher.dispatch("c")
    entered, release = threading.Event(), threading.Event()

    def hold_writer(tx: object) -> None:
        entered.set()
        release.wait(10)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(dispatcher.db.write, hold_writer)
        await trio.to_thread.run_sync(entered.wait, 10)
        asker = trio.CancelScope()
        nursery.start_soon(_claim_in, dispatcher, asker)
        await trio.testing.wait_all_tasks_blocked()
        asker.cancel()  # its claim op waits behind the held batch: it will still run and commit
        await trio.testing.wait_all_tasks_blocked()
        release.set()
    with trio.fail_after(5):
        claimed = await dispatcher.claim("c", worker="w2")
    assert claimed.task.id == accepted.task.id
    assert claimed.task.attempts == 1  # the lost claim was not counted
    types = await dispatcher.event_types(accepted.task.id)
    assert types == ["task.queued", "task.claimed", "task.queued", "task.claimed"]


async def _claim_in(d: Harness, scope: trio.CancelScope) -> None:
    with scope:
        await d.claim("c", worker="gone")


async def test_delayed_task_is_not_claimed_before_not_before(
    quiet_dispatcher: Harness, clock: trio.abc.Clock
) -> None:
    later = await quiet_dispatcher.dispatch("c", not_before=trio_clock() + 100.0, priority=9)
    now = await quiet_dispatcher.dispatch("c")
    first = await quiet_dispatcher.claim("c")
    assert first.task.id == now.task.id
    second = await quiet_dispatcher.claim("c")
    assert second.task.id == later.task.id
    assert trio_clock() >= later.task.not_before


async def test_bad_lease_is_refused(dispatcher: Harness) -> None:
    with pytest.raises(InvalidTask):
        await dispatcher.ref.ask(lambda r: Claim("c", "w", r, lease=0.0))
    assert LONG > 0


async def _stored_lease(dispatcher: Harness, task_id: str) -> tuple[object, ...]:
    sql = (
        "SELECT status, attempts, lease_token, lease_s, lease_expires_at, deadline_at, claimed_by, progress,"
        " updated_at, finished_at FROM tasks WHERE id = ?"
    )
    row: tuple[object, ...] = await dispatcher.db.read(lambda conn: conn.execute(sql, (task_id,)).fetchone())
    return row


@pytest.mark.parametrize("task_timeout", [None, 60.0])
async def test_a_claim_stores_the_lease_it_hands_out(dispatcher: Harness, task_timeout: float | None) -> None:
    accepted = await dispatcher.dispatch("c", timeout=task_timeout)
    claimed = await dispatcher.claim("c", worker="w7", lease=20.0)
    task = claimed.task
    assert task.id == accepted.task.id
    assert await _stored_lease(dispatcher, task.id) == (
        "claimed", 1, claimed.lease_token, 20.0, task.lease_expires_at, task.deadline_at, "w7", None,
        task.updated_at, None,
    )  # fmt: skip
    assert (task.deadline_at is None) is (task_timeout is None)


async def test_a_reclaimed_task_loses_the_progress_and_holder_of_its_released_attempt(
    dispatcher: Harness,
) -> None:
    await dispatcher.dispatch("c")
    first = await dispatcher.claim("c", worker="w1", lease=20.0)
    await dispatcher.heartbeat(first, progress={"pct": 40})
    await dispatcher.ref.ask(lambda r: Release(first.task.id, first.lease_token, r))
    again = await dispatcher.claim("c", worker="w2", lease=25.0)
    task = again.task
    assert again.lease_token != first.lease_token
    assert task.progress is None
    assert await _stored_lease(dispatcher, task.id) == (
        "claimed", 1, again.lease_token, 25.0, task.lease_expires_at, None, "w2", None, task.updated_at, None,
    )  # fmt: skip
