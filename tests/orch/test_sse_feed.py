"""The feed under the SSE and websocket endpoints, against a real SQLite event log: replay, the replay/live
seam under concurrent writers, cancellation of a waiting reader (heartbeats), lag, and the end on close."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from prometheus_client import CollectorRegistry

from actors.storage import Database, StoredEvent, Tx
from orch.config import FeedsConfig
from orch.feeds import EventFilter, FeedEnded, FeedHub, FeedLagged, FeedMetrics


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[FeedHub]:
    holder: list[Database] = []
    feeds = FeedHub(
        FeedsConfig(buffer=64, replay_page=5), lambda: holder[0], FeedMetrics(CollectorRegistry())
    )
    async with Database.open(tmp_path / "orch.db", synchronous="NORMAL", publish=feeds.publish_many) as db:
        holder.append(db)
        yield feeds


async def emit(hub: FeedHub, count: int, type_: str = "test.tick") -> list[int]:
    def op(tx: Tx) -> list[StoredEvent]:
        return [tx.emit(type_, subject=f"s{i % 3}") for i in range(count)]

    db = hub._database()
    return [e.seq for e in await db.write(op)]


async def collect(hub: FeedHub, event_filter: EventFilter, after: int | None, until: int) -> list[int]:
    """Read a feed until seq `until`, cancelling the wait at random (as a heartbeat deadline does)."""
    rng = random.Random(after)
    seen: list[int] = []
    with hub.open_feed(event_filter, after=after) as feed:
        while not seen or seen[-1] < until:
            with trio.move_on_after(rng.choice([0.0, 0.0005, 0.002, 1.0])):
                seen += [e.seq for e in await feed.next_batch()]
    return seen


async def test_replay_then_live_has_no_gap_and_no_duplicate_under_concurrent_writers(hub: FeedHub) -> None:
    produced: list[int] = []
    final: list[int] = []  # the last seq, once the writers are done
    results: dict[int, tuple[int, list[int]]] = {}
    rng = random.Random(3)

    async def writer(seed: int) -> None:
        local = random.Random(seed)
        for _ in range(60):
            produced.extend(await emit(hub, local.randint(1, 5)))
            await trio.sleep(local.uniform(0, 0.002))

    async def reader(index: int, after: int) -> None:
        # Waits are cancelled at random, as the SSE heartbeat deadline does: nothing may be lost.
        local = random.Random(index)
        seen: list[int] = []
        with hub.open_feed(EventFilter(), after=after) as feed:
            while not (final and seen and seen[-1] >= final[0]):
                with trio.move_on_after(local.choice([0.0, 0.0005, 0.002, 0.05])):
                    seen += [e.seq for e in await feed.next_batch()]
        results[index] = (after, seen)

    with trio.fail_after(30):
        async with trio.open_nursery() as readers:
            async with trio.open_nursery() as writers:
                for seed in range(3):
                    writers.start_soon(writer, seed)
                for index in range(12):
                    # Readers join at random moments, resuming from a random seq seen so far.
                    await trio.sleep(rng.uniform(0, 0.02))
                    readers.start_soon(reader, index, rng.choice([0, *produced]))
            final.append(max(produced))
    everything = sorted(produced)
    assert len(results) == 12
    for index, (after, seen) in results.items():
        assert seen == [s for s in everything if s > after], index


async def test_a_feed_without_a_start_is_live_only(hub: FeedHub) -> None:
    await emit(hub, 3)
    with hub.open_feed(EventFilter(), after=None) as feed:
        assert feed.live
        fresh = await emit(hub, 2)
        with trio.fail_after(5):
            assert [e.seq for e in await feed.next_batch()] == fresh


async def test_the_feed_reports_going_live_once_with_an_empty_batch_if_need_be(hub: FeedHub) -> None:
    stored = await emit(hub, 10)  # two pages of 5
    with trio.fail_after(5), hub.open_feed(EventFilter(), after=0) as feed:
        seen: list[int] = []
        while not feed.live:
            seen += [e.seq for e in await feed.next_batch()]
        assert seen == stored
        fresh = await emit(hub, 1)
        assert [e.seq for e in await feed.next_batch()] == fresh


async def test_filters_apply_to_replay_and_live_alike(hub: FeedHub) -> None:
    ticks = await emit(hub, 6)
    await emit(hub, 4, "other.thing")
    event_filter = EventFilter.parse(types="test.", task_id="s1")
    wanted = [s for i, s in enumerate(ticks) if i % 3 == 1]
    with trio.fail_after(5), hub.open_feed(event_filter, after=0) as feed:
        seen: list[int] = []
        while not feed.live:
            seen += [e.seq for e in await feed.next_batch()]
        assert seen == wanted
        live = await emit(hub, 6)
        await emit(hub, 3, "other.thing")
        assert [e.seq for e in await feed.next_batch()] == [s for i, s in enumerate(live) if i % 3 == 1]


async def test_a_subscriber_that_falls_behind_gets_lagged_and_resumes_from_the_store(hub: FeedHub) -> None:
    with hub.open_feed(EventFilter(), after=None) as feed:
        burst = await emit(hub, 100)  # > buffer of 64, in one commit
        with pytest.raises(FeedLagged) as lagged, trio.fail_after(5):
            await feed.next_batch()
    assert lagged.value.last_seq == 0
    with trio.fail_after(5):
        assert await collect(hub, EventFilter(), lagged.value.last_seq, burst[-1]) == burst


async def test_closing_the_hub_ends_every_feed_after_what_it_holds(hub: FeedHub) -> None:
    with (
        hub.open_feed(EventFilter(), after=None) as live_feed,
        hub.open_feed(EventFilter(), after=0) as replay,
    ):
        pending = await emit(hub, 3)
        hub.close()
        with trio.fail_after(5):
            assert [e.seq for e in await live_feed.next_batch()] == pending
            with pytest.raises(FeedEnded) as ended:
                await live_feed.next_batch()
            assert ended.value.last_seq == pending[-1]
            with pytest.raises(FeedEnded):
                await replay.next_batch()
    with pytest.raises(FeedEnded):
        hub.open_feed(EventFilter(), after=None)
    await emit(hub, 1)  # publishing into a closed hub is a no-op, not an error


GC_PROBE = """
import gc, json, sys
from orch.config import load_config
from orch.feeds import apply_gc_tuning
config = load_config(env={}, overrides=json.loads(sys.argv[1]))
before = gc.get_threshold()
tuning = apply_gc_tuning(config.feeds)
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                  "reported": [tuning.frozen, list(tuning.thresholds)]}))
"""


@pytest.mark.parametrize(
    ("overrides", "frozen", "gen0"),
    [
        ({}, True, 100_000),
        ({"feeds.gc_gen0_threshold": 50_000}, True, 50_000),
        ({"feeds.gc_freeze": False, "feeds.gc_gen0_threshold": 0}, False, None),
    ],
)
async def test_gc_tuning_follows_the_feeds_config(
    overrides: dict[str, object], frozen: bool, gen0: int | None
) -> None:
    # In a subprocess: freezing this test process would keep every later test's garbage alive.
    with trio.fail_after(30):
        done = await trio.run_process(
            [sys.executable, "-c", GC_PROBE, json.dumps(overrides)], capture_stdout=True, check=True
        )
    result = json.loads(done.stdout)
    assert (result["frozen"] > 1000) is frozen
    assert result["reported"][0] == result["frozen"]
    assert result["after"][0] == (gen0 if gen0 is not None else result["before"][0])
    assert result["reported"][1] == result["after"]
