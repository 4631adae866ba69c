"""The shared flush clock coalescing feeds wait on (virtual time: trio's autojump clock)."""

from __future__ import annotations

import trio
import trio.testing

from orch.feeds.flush import FlushClock


async def test_waiters_of_one_period_are_released_together_at_the_next_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = FlushClock(0.05)
    released: list[float] = []

    async def waiter(delay: float) -> None:
        await trio.sleep(delay)
        await clock.wait()
        released.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(clock.run)
        await trio.sleep(1.0)  # idle: no waiter, no tick
        start = trio.current_time()
        for delay in (0.0, 0.01, 0.04):
            nursery.start_soon(waiter, delay)
        await trio.sleep(0.2)
        nursery.cancel_scope.cancel()
    assert released == [start + 0.05] * 3


async def test_without_a_running_clock_a_wait_lasts_one_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = FlushClock(0.05)
    start = trio.current_time()
    await clock.wait()
    assert trio.current_time() - start == 0.05


async def test_a_stopped_clock_releases_its_waiters(autojump_clock: trio.testing.MockClock) -> None:
    clock = FlushClock(10.0)
    released: list[float] = []

    async def run_for(seconds: float) -> None:
        with trio.move_on_after(seconds):
            await clock.run()

    async def waiter() -> None:
        await clock.wait()
        released.append(trio.current_time())

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_for, 1.0)
        await trio.sleep(0.5)
        nursery.start_soon(waiter)
    assert released == [start + 1.0]  # when the clock stopped, not at its 10 s tick
