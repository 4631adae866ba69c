"""Behaviour of runtime.broadcast: topic pub/sub with bounded, coalescing, lag-cutting subscriber buffers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from runtime.broadcast import Broadcast, BroadcastStats, Lagged, Subscription


@dataclass(frozen=True, slots=True)
class Ev:
    seq: int
    topic: str = "t"


def seqs(batch: Sequence[Ev]) -> list[int]:
    return [e.seq for e in batch]


def publish_range(bc: Broadcast[Ev], topic: str, start: int, stop: int) -> None:
    for seq in range(start, stop):
        bc.publish(topic, Ev(seq, topic))


# --- topics -----------------------------------------------------------------------------------------------


async def test_subscriber_receives_only_the_topics_it_subscribed_to() -> None:
    bc: Broadcast[Ev] = Broadcast()
    with bc.subscribe(["task.queued", "lock.acquired"]) as sub:
        bc.publish("task.queued", Ev(1))
        bc.publish("task.running", Ev(2))
        bc.publish("lock.acquired", Ev(3))
        bc.publish("lock.released", Ev(4))
        assert seqs(await sub.receive_batch()) == [1, 3]


async def test_prefix_wildcard_receives_every_matching_topic_and_nothing_else() -> None:
    bc: Broadcast[Ev] = Broadcast()
    with bc.subscribe(["task.*"]) as sub:
        bc.publish("task.queued", Ev(1))
        bc.publish("lock.acquired", Ev(2))
        bc.publish("task.dead", Ev(3))
        bc.publish("tasks", Ev(4))
        assert seqs(await sub.receive_batch()) == [1, 3]


@pytest.mark.parametrize("topics", [None, ["*"]])
async def test_subscribing_to_all_topics_receives_every_event(topics: list[str] | None) -> None:
    bc: Broadcast[Ev] = Broadcast()
    with bc.subscribe(topics) as sub:
        bc.publish("task.queued", Ev(1))
        bc.publish("security.login_failed", Ev(2))
        bc.publish("", Ev(3))
        assert seqs(await sub.receive_batch()) == [1, 2, 3]


async def test_overlapping_patterns_deliver_each_event_once() -> None:
    bc: Broadcast[Ev] = Broadcast()
    with bc.subscribe(["task.queued", "task.*", "*", "task.queued"]) as sub:
        bc.publish("task.queued", Ev(1))
        bc.publish("task.dead", Ev(2))
        assert seqs(await sub.receive_batch()) == [1, 2]
    assert bc.statistics().delivered == 2


async def test_subscription_made_after_a_publish_sees_only_later_events() -> None:
    bc: Broadcast[Ev] = Broadcast()
    with bc.subscribe(["a"]) as early:
        bc.publish("b", Ev(1))
        bc.publish("a", Ev(2))
        with bc.subscribe(["b"]) as late:
            bc.publish("b", Ev(3))
            assert seqs(await late.receive_batch()) == [3]
        bc.publish("b", Ev(4))
        assert seqs(await early.receive_batch()) == [2]


@pytest.mark.parametrize(
    ("topics", "error"),
    [("task.queued", TypeError), ([], ValueError), (["task.*.x"], ValueError), (["*a"], ValueError)],
)
async def test_invalid_topic_patterns_are_rejected(topics: list[str], error: type[Exception]) -> None:
    bc: Broadcast[Ev] = Broadcast()
    with pytest.raises(error):
        bc.subscribe(topics)
    assert bc.statistics().subscribers == 0


async def test_capacity_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Broadcast[Ev](capacity=0)
    bc: Broadcast[Ev] = Broadcast()
    with pytest.raises(ValueError, match="capacity"):
        bc.subscribe(capacity=0)


# --- batching ---------------------------------------------------------------------------------------------


async def test_subscriber_that_is_behind_receives_all_pending_events_as_one_batch() -> None:
    bc: Broadcast[Ev] = Broadcast(capacity=100)
    with bc.subscribe() as sub:
        publish_range(bc, "t", 1, 51)
        assert sub.pending == 50
        assert seqs(await sub.receive_batch()) == list(range(1, 51))
        assert sub.pending == 0
        assert sub.last_seq == 50


async def test_waiting_receiver_wakes_on_first_event_and_collects_the_rest_published_meanwhile() -> None:
    bc: Broadcast[Ev] = Broadcast()
    batches: list[list[int]] = []
    with bc.subscribe() as sub:
        async with trio.open_nursery() as nursery:

            async def receive_two() -> None:
                batches.append(seqs(await sub.receive_batch()))
                batches.append(seqs(await sub.receive_batch()))

            nursery.start_soon(receive_two)
            await trio.testing.wait_all_tasks_blocked()
            bc.publish("t", Ev(1))
            await trio.testing.wait_all_tasks_blocked()
            publish_range(bc, "t", 2, 5)
    assert batches == [[1], [2, 3, 4]]


async def test_returned_batch_is_not_changed_by_later_publishes() -> None:
    bc: Broadcast[Ev] = Broadcast()
    with bc.subscribe() as sub:
        bc.publish("t", Ev(1))
        batch = await sub.receive_batch()
        publish_range(bc, "t", 2, 4)
        assert seqs(batch) == [1]
        assert seqs(await sub.receive_batch()) == [2, 3]


# --- lagging ----------------------------------------------------------------------------------------------


async def test_slow_subscriber_is_cut_off_while_fast_one_receives_every_event_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bc: Broadcast[Ev] = Broadcast(capacity=8)
    fast_seen: list[int] = []
    slow_seen: list[int] = []
    slow_lagged: list[Lagged] = []

    async def fast(sub: Subscription[Ev]) -> None:
        with sub:
            async for batch in sub:
                fast_seen.extend(seqs(batch))

    async def slow(sub: Subscription[Ev]) -> None:
        with sub:
            try:
                async for batch in sub:
                    slow_seen.extend(seqs(batch))
                    await trio.sleep(1)  # can absorb at most 8 events per second; 10/s arrive
            except Lagged as lagged:
                slow_lagged.append(lagged)

    with trio.fail_after(60):  # a subscriber left asleep would hang forever
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fast, bc.subscribe(["t"]))
            nursery.start_soon(slow, bc.subscribe(["t"]))
            await trio.testing.wait_all_tasks_blocked()
            for seq in range(1, 201):
                bc.publish("t", Ev(seq))
                await trio.sleep(0.1)
            bc.close()

    assert fast_seen == list(range(1, 201))
    assert len(slow_lagged) == 1
    assert slow_seen == list(range(1, len(slow_seen) + 1))
    assert slow_lagged[0].last_seq == slow_seen[-1]
    assert len(slow_seen) < 200
    stats = bc.statistics()
    assert stats.lagged == 1
    assert stats.published == 200


async def test_lagged_carries_the_seq_of_the_last_received_event_and_drops_the_backlog() -> None:
    bc: Broadcast[Ev] = Broadcast()
    with bc.subscribe(capacity=3) as sub:
        publish_range(bc, "t", 10, 12)
        assert seqs(await sub.receive_batch()) == [10, 11]
        publish_range(bc, "t", 12, 16)  # 12, 13, 14 fill the buffer; 15 does not fit
        assert sub.pending == 0
        with pytest.raises(Lagged) as caught:
            await sub.receive_batch()
        assert caught.value.last_seq == 11
        assert sub.last_seq == 11


async def test_lagged_before_receiving_anything_carries_none() -> None:
    bc: Broadcast[Ev] = Broadcast(capacity=2)
    with bc.subscribe() as sub:
        publish_range(bc, "t", 1, 4)
        with pytest.raises(Lagged) as caught:
            await sub.receive_batch()
        assert caught.value.last_seq is None


async def test_cut_off_subscriber_keeps_raising_lagged_and_receives_nothing_more() -> None:
    bc: Broadcast[Ev] = Broadcast(capacity=1)
    with bc.subscribe() as sub:
        publish_range(bc, "t", 1, 3)
        for _ in range(2):
            with pytest.raises(Lagged):
                await sub.receive_batch()
        publish_range(bc, "t", 3, 5)
        assert sub.pending == 0
        with pytest.raises(Lagged):
            await sub.receive_batch()
    assert bc.statistics() == BroadcastStats(subscribers=0, published=4, delivered=1, lagged=1)


async def test_waiting_receiver_woken_then_overrun_before_it_runs_gets_lagged() -> None:
    bc: Broadcast[Ev] = Broadcast(capacity=2)
    outcome: list[BaseException] = []
    with bc.subscribe() as sub:
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                try:
                    await sub.receive_batch()
                except Lagged as lagged:
                    outcome.append(lagged)

            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            publish_range(bc, "t", 1, 4)  # wakes the receiver, then overruns it before it is scheduled
    assert len(outcome) == 1
    assert isinstance(outcome[0], Lagged)
    assert outcome[0].last_seq is None


async def test_publisher_never_blocks_on_subscribers_that_do_not_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bc: Broadcast[Ev] = Broadcast(capacity=16)
    idle = [bc.subscribe() for _ in range(10)]
    reader = bc.subscribe(capacity=20_000)
    start = trio.current_time()
    publish_range(bc, "t", 0, 10_000)
    assert trio.current_time() == start
    assert all(sub.pending == 0 for sub in idle)
    assert reader.pending == 10_000
    stats = bc.statistics()
    assert stats.lagged == 10
    assert stats.subscribers == 1
    assert stats.delivered == 10_000 + 10 * 16


# --- closing ----------------------------------------------------------------------------------------------


async def test_closing_the_broadcast_ends_iteration_after_pending_events_are_received() -> None:
    bc: Broadcast[Ev] = Broadcast()
    received: list[int] = []
    with bc.subscribe() as sub:
        publish_range(bc, "t", 1, 4)
        bc.close()
        async for batch in sub:
            received.extend(seqs(batch))
        with pytest.raises(trio.EndOfChannel):
            await sub.receive_batch()
    assert received == [1, 2, 3]
    assert bc.closed
    assert bc.statistics().subscribers == 0


async def test_closing_the_broadcast_wakes_every_waiting_receiver(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bc: Broadcast[Ev] = Broadcast()
    ended: list[int] = []

    async def consume(index: int, sub: Subscription[Ev]) -> None:
        with sub:
            async for _ in sub:
                pytest.fail("no event was published")
        ended.append(index)

    with trio.fail_after(10):  # a receiver left asleep would hang forever
        async with trio.open_nursery() as nursery:
            for index in range(5):
                nursery.start_soon(consume, index, bc.subscribe())
            await trio.testing.wait_all_tasks_blocked()
            bc.close()
    assert sorted(ended) == [0, 1, 2, 3, 4]


async def test_publish_and_subscribe_after_close_raise() -> None:
    bc: Broadcast[Ev] = Broadcast()
    bc.close()
    bc.close()  # idempotent
    with pytest.raises(trio.ClosedResourceError):
        bc.publish("t", Ev(1))
    with pytest.raises(trio.ClosedResourceError):
        bc.subscribe()


async def test_closed_subscription_receives_nothing_more_and_is_unsubscribed() -> None:
    bc: Broadcast[Ev] = Broadcast()
    sub = bc.subscribe()
    other = bc.subscribe()
    bc.publish("t", Ev(1))
    sub.close()
    sub.close()  # idempotent
    bc.publish("t", Ev(2))
    assert sub.pending == 0
    with pytest.raises(trio.ClosedResourceError):
        await sub.receive_batch()
    assert await _drain(sub) == []
    assert seqs(await other.receive_batch()) == [1, 2]
    assert bc.statistics().subscribers == 1


async def _drain(sub: Subscription[Ev]) -> list[int]:
    return [seq async for batch in sub for seq in seqs(batch)]


async def test_context_manager_exit_closes_the_subscription() -> None:
    bc: Broadcast[Ev] = Broadcast()
    with bc.subscribe() as sub:
        assert bc.statistics().subscribers == 1
    assert bc.statistics().subscribers == 0
    with pytest.raises(trio.ClosedResourceError):
        await sub.receive_batch()


async def test_closing_a_subscription_from_another_task_wakes_its_receiver(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bc: Broadcast[Ev] = Broadcast()
    sub = bc.subscribe()
    closed = False

    async def receive() -> None:
        nonlocal closed
        with pytest.raises(trio.ClosedResourceError):
            await sub.receive_batch()
        closed = True

    with trio.fail_after(10):  # a receiver left asleep would hang forever
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            sub.close()
    assert closed


async def test_closing_a_subscription_from_another_task_ends_its_iteration(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bc: Broadcast[Ev] = Broadcast()
    sub = bc.subscribe()
    ended = False

    async def iterate() -> None:
        nonlocal ended
        async for _ in sub:
            pytest.fail("no event was published")
        ended = True

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(iterate)
            await trio.testing.wait_all_tasks_blocked()
            sub.close()
    assert ended


# --- cancellation -----------------------------------------------------------------------------------------


async def test_cancelled_wait_leaves_the_subscription_usable(autojump_clock: trio.testing.MockClock) -> None:
    bc: Broadcast[Ev] = Broadcast()
    with bc.subscribe() as sub:
        with trio.move_on_after(1) as scope:
            await sub.receive_batch()
        assert scope.cancelled_caught
        bc.publish("t", Ev(1))
        assert seqs(await sub.receive_batch()) == [1]


async def test_cancelled_receive_with_events_pending_raises_cancelled_and_keeps_the_events() -> None:
    bc: Broadcast[Ev] = Broadcast()
    with bc.subscribe() as sub:
        publish_range(bc, "t", 1, 3)
        with trio.CancelScope() as scope:
            scope.cancel()
            await sub.receive_batch()
            pytest.fail("receive_batch swallowed the cancellation")
        assert scope.cancelled_caught
        assert sub.pending == 2
        assert seqs(await sub.receive_batch()) == [1, 2]


async def test_cancellation_of_a_waiting_receive_propagates_out_of_iteration() -> None:
    bc: Broadcast[Ev] = Broadcast()
    reached_end = False
    with bc.subscribe() as sub:
        async with trio.open_nursery() as nursery:

            async def iterate() -> None:
                nonlocal reached_end
                async for _ in sub:
                    pass
                reached_end = True

            nursery.start_soon(iterate)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert nursery.cancel_scope.cancelled_caught
    assert not reached_end


async def test_second_concurrent_receiver_is_rejected() -> None:
    bc: Broadcast[Ev] = Broadcast()
    with bc.subscribe() as sub:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sub.receive_batch)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await sub.receive_batch()
            bc.publish("t", Ev(1))


# --- model check ------------------------------------------------------------------------------------------

_ops = st.lists(
    st.one_of(st.tuples(st.just("publish"), st.sampled_from(["a", "b"])), st.just(("receive", ""))),
    max_size=60,
)


@given(ops=_ops, capacity=st.integers(min_value=1, max_value=5))
async def test_subscriber_sees_an_in_order_prefix_of_its_topic_or_lags_at_its_last_seq(
    ops: list[tuple[str, str]], capacity: int
) -> None:
    bc: Broadcast[Ev] = Broadcast(capacity=capacity)
    sub = bc.subscribe(["a"])
    published: list[int] = []
    received: list[int] = []
    lagged_at: list[int | None] = []

    async def receive() -> None:
        try:
            batch = await sub.receive_batch()
        except Lagged as lagged:
            lagged_at.append(lagged.last_seq)
        else:
            assert all(e.topic == "a" for e in batch)
            assert 1 <= len(batch) <= capacity
            received.extend(seqs(batch))

    for seq, (op, topic) in enumerate(ops):
        if op == "publish":
            bc.publish(topic, Ev(seq, topic))
            if topic == "a":
                published.append(seq)
        elif sub.pending or bc.statistics().lagged:
            await receive()
    bc.close()  # from here on receive_batch never waits
    while not lagged_at:
        try:
            await receive()
        except trio.EndOfChannel:
            break
    assert received == published[: len(received)]
    if lagged_at:
        assert set(lagged_at) == {received[-1] if received else None}
        with pytest.raises(Lagged):  # still, after the broadcast closed
            await sub.receive_batch()
    else:
        assert received == published
