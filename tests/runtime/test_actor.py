"""Asks, tells and replies against a single actor."""

from __future__ import annotations

import pytest
import trio

from runtime import ActorCrashed, ActorFailed, ActorRef, ActorStopped, MailboxFull, Reply, open_actor
from runtime._mailbox import Mailbox

from .helpers import Block, Crash, Echo, EchoActor, Exit, Hold, Journal, Msg, Refused


async def test_ask_returns_the_handlers_reply() -> None:
    async with open_actor(EchoActor) as ref:
        assert await ref.ask(lambda r: Echo(41, r)) == 41


async def test_domain_error_reaches_the_asker_and_the_actor_keeps_running() -> None:
    async with open_actor(EchoActor) as ref:
        with pytest.raises(Refused, match="negative"):
            await ref.ask(lambda r: Echo(-1, r))
        assert await ref.ask(lambda r: Echo(2, r)) == 2
        assert ref.statistics().handled == 2


async def test_tell_nowait_raises_mailbox_full_when_the_mailbox_is_full(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_actor(EchoActor, capacity=2) as ref, trio.open_nursery() as nursery:
        nursery.start_soon(ref.ask, lambda r: Block(1.0, r))
        await trio.testing.wait_all_tasks_blocked()
        ref.tell_nowait(Hold(_orphan_reply()))
        ref.tell_nowait(Hold(_orphan_reply()))
        with pytest.raises(MailboxFull):
            ref.tell_nowait(Hold(_orphan_reply()))
        assert ref.statistics().depth == 2


async def test_tell_waits_for_room_in_the_mailbox(autojump_clock: trio.abc.Clock) -> None:
    async with open_actor(EchoActor, capacity=1) as ref, trio.open_nursery() as nursery:
        nursery.start_soon(ref.ask, lambda r: Block(5.0, r))
        await trio.testing.wait_all_tasks_blocked()
        await ref.tell(Hold(_orphan_reply()))
        start = trio.current_time()
        await ref.tell(Hold(_orphan_reply()))  # waits until the Block is handled
        assert trio.current_time() - start == pytest.approx(5.0)


async def test_ask_to_a_crashing_actor_raises_actor_crashed_instead_of_hanging() -> None:
    with pytest.raises(ActorFailed, match="told to crash"):
        async with open_actor(EchoActor) as ref:
            with pytest.raises(ActorCrashed) as caught:
                await ref.ask(lambda r: Crash(r))
            assert isinstance(caught.value.__cause__, RuntimeError)


async def test_deferred_replies_held_by_a_crashed_actor_fail_with_actor_crashed() -> None:
    results: list[BaseException] = []

    async def ask_and_hold(ref: ActorRef[Msg]) -> None:
        try:
            await ref.ask(lambda r: Hold(r))
        except ActorCrashed as error:
            results.append(error)

    with pytest.raises(ActorFailed):
        async with open_actor(EchoActor) as ref, trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(ask_and_hold, ref)
            await trio.testing.wait_all_tasks_blocked()
            assert ref.statistics().held_replies == 3
            await ref.tell(Crash())
    assert len(results) == 3


async def test_ask_after_the_actor_stopped_raises_actor_stopped() -> None:
    async with open_actor(EchoActor) as ref:
        pass
    with pytest.raises(ActorStopped):
        await ref.ask(lambda r: Echo(1, r))
    with pytest.raises(ActorStopped):
        ref.tell_nowait(Exit())


async def test_queued_asks_fail_with_actor_stopped_when_the_actor_stops_for_good() -> None:
    outcomes: list[str] = []

    async def ask(ref: ActorRef[Msg]) -> None:
        try:
            await ref.ask(lambda r: Echo(7, r))
            outcomes.append("answered")
        except ActorStopped:
            outcomes.append("stopped")

    async with open_actor(EchoActor) as ref, trio.open_nursery() as nursery:
        await ref.tell(Exit())  # the actor exits normally before reaching the asks (temporary: no restart)
        for _ in range(3):
            nursery.start_soon(ask, ref)
    assert outcomes == ["stopped"] * 3


async def test_late_reply_after_the_asker_gave_up_is_dropped_without_leak() -> None:
    actor = EchoActor()
    async with open_actor(lambda: actor) as ref:
        with trio.move_on_after(0.01):
            await ref.ask(lambda r: Hold(r))
        held = actor.held[0]
        assert held.abandoned
        assert held.send(5) is False  # dropped; the actor learns the asker is gone
        assert ref.statistics().held_replies == 0
        assert await ref.ask(lambda r: Echo(1, r)) == 1


async def test_ask_abandoned_before_the_actor_reached_it_is_never_handled(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal = Journal()
    async with open_actor(lambda: EchoActor(journal=journal)) as ref:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ref.ask, lambda r: Block(10.0, r))
            await trio.testing.wait_all_tasks_blocked()
            with trio.move_on_after(1.0):
                await ref.ask(lambda r: Echo(99, r))
        assert journal.of("echo") == []
        assert await ref.ask(lambda r: Echo(3, r)) == 3


async def test_on_abandon_callback_runs_when_the_asker_is_cancelled() -> None:
    actor = EchoActor()
    dropped: list[str] = []
    async with open_actor(lambda: actor) as ref:
        with trio.move_on_after(0.01):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ref.ask, lambda r: Hold(r))
                await trio.testing.wait_all_tasks_blocked()
                actor.held[0].on_abandon(lambda: dropped.append("gone"))
        assert dropped == ["gone"]


async def test_cancellation_of_an_ask_propagates_to_the_caller() -> None:
    async with open_actor(EchoActor) as ref:
        with trio.CancelScope() as scope:
            scope.cancel()
            await ref.ask(lambda r: Hold(r))
            pytest.fail("ask swallowed the cancellation")
        assert scope.cancelled_caught


async def test_background_task_failure_crashes_the_actor() -> None:
    class Ticking(EchoActor):
        async def on_start(self) -> None:
            self.spawn(self._tick)

        async def _tick(self) -> None:
            await trio.sleep(1)
            raise ValueError("tick failed")

    with pytest.raises(ActorFailed, match="tick failed"):
        async with open_actor(Ticking) as ref:
            with pytest.raises(ActorCrashed):
                await ref.ask(lambda r: Hold(r))


async def test_background_tasks_stop_with_the_actor(autojump_clock: trio.abc.Clock) -> None:
    ticks: list[float] = []

    class Ticking(EchoActor):
        async def on_start(self) -> None:
            self.spawn(self._tick)

        async def _tick(self) -> None:
            while True:
                await trio.sleep(1)
                ticks.append(trio.current_time())

    async with open_actor(Ticking):
        await trio.sleep(3.5)
    count = len(ticks)
    await trio.sleep(5)
    assert count == 3 and len(ticks) == count


async def test_refs_and_replies_cannot_be_built_by_user_code() -> None:
    with pytest.raises(TypeError):
        ActorRef(Mailbox("x", 1), object())
    with pytest.raises(TypeError):
        Reply(object())


async def test_statistics_is_an_immutable_snapshot() -> None:
    async with open_actor(EchoActor) as ref:
        before = ref.statistics()
        await ref.ask(lambda r: Echo(1, r))
        assert before.handled == 0 and ref.statistics().handled == 1
        with pytest.raises(AttributeError):
            before.handled = 5  # type: ignore[misc]


def _orphan_reply() -> Reply[int]:
    from runtime._reply import new_reply

    return new_reply()
