"""When the garbage sweeper collects (virtual time: trio's autojump clock)."""

from __future__ import annotations

import trio
import trio.testing

from orch.feeds.gc_tuning import GarbageSweeper


def test_a_sweep_is_due_after_enough_closes_relative_to_open_connections() -> None:
    sweeper = GarbageSweeper(1.0, min_closed=100)
    sweeper.closed = 99
    assert not sweeper.due(still_open=0)
    sweeper.closed = 100
    assert sweeper.due(still_open=400) and not sweeper.due(still_open=404)


async def test_the_sweep_waits_one_check_for_closing_connections_to_unwind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sweeper = GarbageSweeper(1.0, min_closed=1)
    sweeper.connection_closed()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sweeper.run, lambda: 0)
        await trio.sleep(1.5)
        assert sweeper.sweeps == 0  # due at the first check: armed
        await trio.sleep(1.0)
        assert (sweeper.sweeps, sweeper.closed) == (1, 0)
        await trio.sleep(10.0)
        assert sweeper.sweeps == 1  # nothing closed since
        nursery.cancel_scope.cancel()


async def test_free_heap_memory_is_handed_back_to_the_os_once_per_trim_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sweeper = GarbageSweeper(2.0, trim_every=60.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sweeper.run, lambda: 0)
        await trio.sleep(59.0)
        assert sweeper.trims == 0
        await trio.sleep(2.0)
        assert sweeper.trims == 1
        await trio.sleep(120.0)
        assert sweeper.trims == 3
        nursery.cancel_scope.cancel()
