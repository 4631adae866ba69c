"""`Backlog`: dispatchers wait for room that workers give back; never longer than their patience
without a completion."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from bench.harness.pacing import Backlog, backlog


async def test_a_reservation_that_does_not_fit_waits_for_completed_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    paced = Backlog(limit=100)
    await paced.reserve(80, patience=60.0)
    waited_until: list[float] = []

    async def dispatcher() -> None:
        await paced.reserve(40, patience=60.0)
        waited_until.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(dispatcher)
        await trio.sleep(5.0)
        paced.release(10)  # 70 + 40 > 100: still no room
        await trio.sleep(5.0)
        assert waited_until == []
        paced.release(20)  # 50 + 40 <= 100
    assert waited_until == [10.0]
    assert paced.outstanding == 90


async def test_a_dispatcher_goes_ahead_after_its_patience_when_nobody_completes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    paced = Backlog(limit=10)
    await paced.reserve(10, patience=1.0)
    start = trio.current_time()
    await paced.reserve(10, patience=1.0)
    assert trio.current_time() - start == pytest.approx(1.0)
    assert paced.outstanding == 20


async def test_completions_that_leave_no_room_yet_restart_the_patience(
    autojump_clock: trio.testing.MockClock,
) -> None:
    paced = Backlog(limit=100)
    await paced.reserve(100, patience=1.0)
    waited_until: list[float] = []

    async def dispatcher() -> None:
        await paced.reserve(50, patience=1.0)
        waited_until.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(dispatcher)
        for _ in range(5):  # the workers keep completing, 10 tasks at a time
            await trio.sleep(0.8)
            paced.release(10)
    assert waited_until == [pytest.approx(4.0)]  # 4 s of waiting, but never 1 s without a completion
    assert paced.outstanding == 100


async def test_room_goes_to_the_dispatcher_that_waited_longest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    paced = Backlog(limit=100)
    await paced.reserve(100, patience=60.0)
    order: list[str] = []

    async def waiting_dispatcher() -> None:
        await paced.reserve(50, patience=60.0)
        order.append("waited")

    async def workers() -> None:
        await trio.sleep(1.0)
        paced.release(50)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiting_dispatcher)
        await trio.sleep(1.0)
        paced.release(50)  # room for one, freed while a dispatcher waits for it
        nursery.start_soon(workers)
        await paced.reserve(50, patience=60.0)  # a dispatcher back from its call asks at that moment
        order.append("asked later")
    assert order == ["waited", "asked later"]
    assert paced.outstanding == 100


async def test_waiters_go_ahead_together_once_the_workers_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    paced = Backlog(limit=10)
    await paced.reserve(10, patience=1.0)
    gone: list[float] = []

    async def dispatcher() -> None:
        await paced.reserve(10, patience=1.0)
        gone.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(dispatcher)
    assert gone == [pytest.approx(1.0)] * 4
    assert paced.outstanding == 50


async def test_the_first_client_seeds_the_backlog_with_what_the_target_left_unfinished(
    autojump_clock: trio.testing.MockClock,
) -> None:
    paced = Backlog(limit=100)
    asked: list[float] = []

    async def count_unfinished() -> int:
        asked.append(trio.current_time())
        await trio.sleep(1.0)  # a request to the target
        return 90

    async def client() -> None:
        await paced.seed_once(count_unfinished)
        assert paced.outstanding == 90  # nobody goes on before the count is in

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(client)
    assert asked == [0.0]
    start = trio.current_time()
    await paced.reserve(20, patience=3.0)  # 90 + 20 > 100, and nothing completes
    assert trio.current_time() - start == pytest.approx(3.0)


async def test_a_call_bigger_than_the_limit_goes_when_the_backlog_is_empty() -> None:
    paced = Backlog(limit=10)
    with trio.fail_after(1):
        await paced.reserve(50, patience=60.0)
    assert paced.outstanding == 50


async def test_releases_never_take_the_backlog_below_zero() -> None:
    paced = Backlog(limit=10)
    paced.release(5)
    assert paced.outstanding == 0


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        Backlog(0)


def test_every_client_of_a_process_shares_one_backlog_by_name() -> None:
    first = backlog("test-shared", 7)
    assert backlog("test-shared", 99) is first
    assert first.limit == 7
    assert backlog("test-other", 7) is not first
