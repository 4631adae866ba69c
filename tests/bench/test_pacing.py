"""`Backlog`: dispatchers wait for room that workers give back; never longer than their patience."""

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


async def test_a_call_bigger_than_the_limit_goes_when_the_backlog_is_empty() -> None:
    paced = Backlog(limit=10)
    with trio.fail_after(1):
        await paced.reserve(50, patience=60.0)
    assert paced.outstanding == 50


def test_releases_never_take_the_backlog_below_zero() -> None:
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
