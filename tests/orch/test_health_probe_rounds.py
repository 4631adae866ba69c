"""/health shares probe rounds: a flood runs each probe at most once per PROBE_MAX_AGE."""

from __future__ import annotations

import httpx
import pytest
import trio

from orch.health import ComponentHealth, ProbeRound, SharedProbes
from orch.node import PROBE_MAX_AGE
from orch.server import RunningNode


def counting_round(calls: list[float], *, delay: float = 0.0) -> SharedProbes:
    async def run() -> ProbeRound:
        calls.append(trio.current_time())
        await trio.sleep(delay)
        return ProbeRound({"db": ComponentHealth("up", {"n": len(calls)})}, {"rounds": len(calls)})

    return SharedProbes(run, max_age=1.0)


async def test_callers_within_max_age_share_one_round(autojump_clock: trio.testing.MockClock) -> None:
    calls: list[float] = []
    probes = counting_round(calls, delay=0.1)
    seen: list[ProbeRound] = []

    async def get() -> None:
        seen.append(await probes.get())

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(get)
    await trio.sleep(0.5)
    seen.append(await probes.get())
    assert len(calls) == 1
    assert {r.totals["rounds"] for r in seen} == {1}


async def test_a_round_older_than_max_age_is_run_again(autojump_clock: trio.testing.MockClock) -> None:
    calls: list[float] = []
    probes = counting_round(calls)
    await probes.get()
    await trio.sleep(1.0)
    again = await probes.get()
    assert len(calls) == 2
    assert again.totals["rounds"] == 2


async def test_invalidate_forgets_the_last_round(autojump_clock: trio.testing.MockClock) -> None:
    calls: list[float] = []
    probes = counting_round(calls)
    await probes.get()
    probes.invalidate()
    assert (await probes.get()).totals["rounds"] == 2


async def test_waiters_run_their_own_round_when_the_leader_is_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls: list[float] = []
    probes = counting_round(calls, delay=1.0)
    seen: list[ProbeRound] = []

    async def follower() -> None:
        seen.append(await probes.get())

    async with trio.open_nursery() as nursery:
        with trio.move_on_after(0.5):
            async with trio.open_nursery() as leader:
                leader.start_soon(probes.get)
                await trio.sleep(0.1)
                nursery.start_soon(follower)
                await trio.sleep_forever()
    assert len(calls) == 2
    assert seen[0].totals["rounds"] == 2


@pytest.mark.integration
async def test_health_flood_runs_each_probe_once_per_max_age(node: RunningNode) -> None:
    calls: list[float] = []

    async def counted() -> ComponentHealth:
        calls.append(trio.current_time())
        await trio.sleep(0.05)
        return ComponentHealth("up")

    node.node.add_health_probe("counted", counted)
    async with httpx.AsyncClient(base_url=node.url) as http:
        statuses: list[int] = []

        async def get() -> None:
            statuses.append((await http.get("/health")).status_code)

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(get)
        elapsed = trio.current_time() - start
    assert statuses == [200] * 10
    # Real clock: the flood may straddle one expiry on a slow machine, never one round per request.
    assert len(calls) <= 1 + int(elapsed / PROBE_MAX_AGE)
