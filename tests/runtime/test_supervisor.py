"""Supervisor semantics: strategies, restart types, intensity, backoff, ordering, introspection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from runtime import (
    ActorCrashed,
    Backoff,
    ChildCrashed,
    ChildRestarted,
    ChildState,
    Escalated,
    Intensity,
    Restart,
    RuntimeEvent,
    StartFailed,
    Strategy,
    Supervisor,
    SupervisorGaveUp,
    SupervisorSpec,
    WorkerSpec,
    supervisor,
    worker,
)

from .helpers import Block, Crash, Echo, EchoActor, Exit, Journal, Msg

NO_BACKOFF = Backoff(min=0.0)


def echo_worker(
    name: str,
    journal: Journal,
    *,
    restart: Restart = Restart.PERMANENT,
    shutdown: float | None = 5.0,
    **kw: object,
) -> WorkerSpec[Msg]:
    return worker(name, lambda: EchoActor(name, journal, **kw), restart=restart, shutdown=shutdown)  # type: ignore[arg-type]


@asynccontextmanager
async def running(
    spec: SupervisorSpec, events: list[RuntimeEvent] | None = None
) -> AsyncIterator[Supervisor]:
    sink: Callable[[RuntimeEvent], None] | None = events.append if events is not None else None
    tree = Supervisor(spec, on_event=sink)
    async with trio.open_nursery() as nursery:
        await nursery.start(tree.run)
        yield tree
        await tree.stop()


async def crash(spec: WorkerSpec[Msg]) -> None:
    with pytest.raises(ActorCrashed):
        await spec.ref.ask(lambda r: Crash(r))


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


def three(journal: Journal) -> list[WorkerSpec[Msg]]:
    return [echo_worker(n, journal) for n in ("a", "b", "c")]


async def test_children_start_in_order_and_stop_in_reverse_order() -> None:
    journal = Journal()
    async with running(supervisor("root", three(journal))):
        assert journal.entries == ["start:a", "start:b", "start:c"]
    assert journal.entries[3:] == ["stop:c", "stop:b", "stop:a"]


async def test_one_for_one_restarts_only_the_crashed_child() -> None:
    journal = Journal()
    a, b, c = three(journal)
    async with running(supervisor("root", [a, b, c], backoff=NO_BACKOFF)):
        await crash(b)
        await settle()
    assert journal.of("start") == ["a", "b", "c", "b"]


async def test_one_for_all_restarts_every_child_in_start_order() -> None:
    journal = Journal()
    a, b, c = three(journal)
    async with running(supervisor("root", [a, b, c], strategy=Strategy.ONE_FOR_ALL, backoff=NO_BACKOFF)):
        journal.entries.clear()
        await crash(b)
        await settle()
        assert journal.entries == ["crash:b", "stop:c", "stop:a", "start:a", "start:b", "start:c"]


async def test_rest_for_one_restarts_the_crashed_child_and_those_started_after_it() -> None:
    journal = Journal()
    a, b, c = three(journal)
    async with running(supervisor("root", [a, b, c], strategy=Strategy.REST_FOR_ONE, backoff=NO_BACKOFF)):
        journal.entries.clear()
        await crash(b)
        await settle()
        assert journal.entries == ["crash:b", "stop:c", "start:b", "start:c"]


async def test_transient_child_not_restarted_after_normal_exit() -> None:
    journal = Journal()
    t = echo_worker("t", journal, restart=Restart.TRANSIENT)
    async with running(supervisor("root", [t], backoff=NO_BACKOFF)) as tree:
        await t.ref.tell(Exit())
        await settle()
        assert tree.status().children[0].state is ChildState.STOPPED
    assert journal.of("start") == ["t"]


async def test_transient_child_restarted_after_a_crash() -> None:
    journal = Journal()
    t = echo_worker("t", journal, restart=Restart.TRANSIENT)
    async with running(supervisor("root", [t], backoff=NO_BACKOFF)):
        await crash(t)
        assert await t.ref.ask(lambda r: Echo(1, r)) == 1
    assert journal.of("start") == ["t", "t"]


async def test_temporary_child_is_never_restarted() -> None:
    journal = Journal()
    t = echo_worker("t", journal, restart=Restart.TEMPORARY)
    async with running(supervisor("root", [t], backoff=NO_BACKOFF)) as tree:
        await crash(t)
        await settle()
        assert tree.status().children[0].state is ChildState.FAILED
    assert journal.of("start") == ["t"]


async def test_permanent_child_is_restarted_after_a_normal_exit() -> None:
    journal = Journal()
    p = echo_worker("p", journal)
    async with running(supervisor("root", [p], backoff=NO_BACKOFF)):
        await p.ref.tell(Exit())
        assert await p.ref.ask(lambda r: Echo(3, r)) == 3
    assert journal.of("start") == ["p", "p"]


async def test_ask_through_the_old_ref_after_a_restart_succeeds() -> None:
    journal = Journal()
    w = echo_worker("w", journal)
    ref_before = w.ref
    async with running(supervisor("root", [w], backoff=NO_BACKOFF)):
        await crash(w)
        assert await ref_before.ask(lambda r: Echo(5, r)) == 5


async def test_messages_queued_behind_a_crash_survive_the_restart() -> None:
    journal = Journal()
    w = echo_worker("w", journal)
    answers: list[int] = []

    async def ask(value: int) -> None:
        answers.append(await w.ref.ask(lambda r: Echo(value, r)))

    async with running(supervisor("root", [w], backoff=NO_BACKOFF)), trio.open_nursery() as nursery:
        nursery.start_soon(w.ref.tell, Crash())
        await settle()
        for value in range(5):
            nursery.start_soon(ask, value)
            await settle()
    assert sorted(answers) == [0, 1, 2, 3, 4]
    assert journal.of("start") == ["w", "w"]


async def test_exceeding_restart_intensity_escalates_to_the_parent() -> None:
    journal = Journal()
    w = echo_worker("w", journal)
    inner = supervisor("inner", [w], intensity=Intensity(max_restarts=2, within=10.0), backoff=NO_BACKOFF)
    events: list[RuntimeEvent] = []
    async with running(supervisor("root", [inner], backoff=NO_BACKOFF), events) as tree:
        for _ in range(3):
            await crash(w)
            await settle()
        gave_up = [e for e in events if isinstance(e, SupervisorGaveUp)]
        assert [(e.supervisor, e.child) for e in gave_up] == [("inner", "w")]
        inner_status = tree.status().children[0]
        assert inner_status.restarts == 1 and inner_status.last_failure is not None
        assert inner_status.last_failure.type == "Escalated"
        assert await w.ref.ask(lambda r: Echo(8, r)) == 8  # the parent restarted the inner tree


async def test_root_supervisor_raises_escalated_when_intensity_is_exceeded() -> None:
    journal = Journal()
    w = echo_worker("w", journal)
    tree = Supervisor(
        supervisor("root", [w], intensity=Intensity(max_restarts=1, within=10.0), backoff=NO_BACKOFF)
    )
    with pytest.raises(ExceptionGroup) as caught:
        async with trio.open_nursery() as nursery:
            await nursery.start(tree.run)
            await crash(w)
            await settle()
            await crash(w)
    assert caught.group_contains(Escalated)
    assert journal.of("start") == ["w", "w"]


async def test_restarts_spread_out_in_time_do_not_exceed_the_intensity(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal = Journal()
    w = echo_worker("w", journal)
    async with running(supervisor("root", [w], intensity=Intensity(2, 5.0), backoff=NO_BACKOFF)):
        for _ in range(6):
            await crash(w)
            await trio.sleep(3.0)
        assert await w.ref.ask(lambda r: Echo(1, r)) == 1


async def test_backoff_delays_grow_and_reset_after_a_healthy_period(autojump_clock: trio.abc.Clock) -> None:
    journal = Journal()
    w = echo_worker("w", journal)
    backoff = Backoff(min=1.0, max=4.0, factor=2.0, jitter=0.0, reset_after=30.0)
    events: list[RuntimeEvent] = []
    spec = supervisor("root", [w], intensity=Intensity(100, 1.0), backoff=backoff)
    async with running(spec, events):
        for _ in range(4):
            await crash(w)
            await w.ref.ask(lambda r: Echo(0, r))  # wait for the restart
        await trio.sleep(31.0)
        await crash(w)
        await w.ref.ask(lambda r: Echo(0, r))
    delays = [e.delay for e in events if isinstance(e, ChildRestarted)]
    assert delays == [1.0, 2.0, 4.0, 4.0, 1.0]


async def test_backoff_jitter_shortens_delays_within_bounds(autojump_clock: trio.abc.Clock) -> None:
    backoff = Backoff(min=1.0, max=8.0, jitter=0.5)
    assert backoff.delay(3, 0.0) == 4.0
    assert backoff.delay(3, 1.0) == 2.0
    assert backoff.delay(10, 0.0) == 8.0


async def test_shutdown_honours_the_grace_period_then_cancels(autojump_clock: trio.abc.Clock) -> None:
    journal = Journal()
    slow = worker("slow", lambda: EchoActor("slow", journal, stop_delay=100.0), shutdown=2.0)
    polite = worker("polite", lambda: EchoActor("polite", journal, stop_delay=1.0), shutdown=2.0)
    start = 0.0
    async with running(supervisor("root", [polite, slow])):
        start = trio.current_time()
    assert trio.current_time() - start == pytest.approx(3.0)  # slow: cut off at 2 s; polite: 1 s
    assert journal.of("stop") == ["polite"]


async def test_shutdown_waits_for_the_message_in_hand(autojump_clock: trio.abc.Clock) -> None:
    journal = Journal()
    w = echo_worker("w", journal)
    answers: list[int] = []

    async def ask() -> None:
        answers.append(await w.ref.ask(lambda r: Block(3.0, r)))

    async with running(supervisor("root", [w])) as tree, trio.open_nursery() as nursery:
        nursery.start_soon(ask)
        await settle()
        await tree.stop()
    assert answers == [3]


async def test_child_that_fails_to_start_is_reported_by_its_id() -> None:
    journal = Journal()
    spec = supervisor(
        "root",
        [echo_worker("a", journal), echo_worker("b", journal, fail_start=True), echo_worker("c", journal)],
    )
    with pytest.raises(StartFailed) as caught:
        await Supervisor(spec).run()
    assert caught.value.child_id == "b"
    assert journal.entries == ["start:a", "stop:a"]


async def test_status_is_a_snapshot_of_the_whole_tree() -> None:
    journal = Journal()
    w = echo_worker("w", journal)
    inner = supervisor("inner", [echo_worker("x", journal)])
    async with running(supervisor("root", [w, inner], backoff=NO_BACKOFF)) as tree:
        await w.ref.ask(lambda r: Echo(1, r))
        await crash(w)
        await w.ref.ask(lambda r: Echo(1, r))
        status = tree.status()
    worker_status = status.children[0]
    assert (worker_status.id, worker_status.kind, worker_status.state) == ("w", "worker", ChildState.RUNNING)
    assert worker_status.restarts == 1
    assert worker_status.last_failure is not None and worker_status.last_failure.type == "RuntimeError"
    assert worker_status.mailbox_capacity == 1000 and worker_status.messages_handled == 2
    assert status.find("x") is not None and status.find("x").kind == "worker"  # type: ignore[union-attr]
    assert status.children[1].kind == "supervisor"
    with pytest.raises(AttributeError):
        status.id = "other"  # type: ignore[misc]


async def test_runtime_events_report_crashes_and_restarts() -> None:
    journal = Journal()
    w = echo_worker("w", journal)
    events: list[RuntimeEvent] = []
    async with running(supervisor("root", [w], backoff=NO_BACKOFF), events):
        await crash(w)
        await settle()
    assert [type(e) for e in events] == [ChildCrashed, ChildRestarted]
    assert events[0].child == "w" and events[1].reason == "crash"  # type: ignore[union-attr]


async def test_restart_child_restarts_a_running_child_on_demand() -> None:
    journal = Journal()
    a, b = echo_worker("a", journal), echo_worker("b", journal)
    inner = supervisor("inner", [b])
    async with running(supervisor("root", [a, inner])) as tree:
        await tree.restart_child("a")
        await tree.restart_child("b")
        with pytest.raises(LookupError):
            await tree.restart_child("nope")
        assert tree.status().find("b").restarts == 1  # type: ignore[union-attr]
    assert journal.entries[:6] == ["start:a", "start:b", "stop:a", "start:a", "stop:b", "start:b"]


async def test_nested_supervisors_stop_their_children_in_reverse_order() -> None:
    journal = Journal()
    inner = supervisor("inner", [echo_worker("x", journal), echo_worker("y", journal)])
    async with running(supervisor("root", [echo_worker("a", journal), inner, echo_worker("z", journal)])):
        pass
    assert journal.entries == [
        "start:a",
        "start:x",
        "start:y",
        "start:z",
        "stop:z",
        "stop:y",
        "stop:x",
        "stop:a",
    ]


async def test_stop_during_backoff_does_not_wait_for_the_backoff(autojump_clock: trio.abc.Clock) -> None:
    journal = Journal()
    w = echo_worker("w", journal)
    async with running(supervisor("root", [w], backoff=Backoff(min=300.0, max=300.0, jitter=0.0))) as tree:
        await crash(w)
        await settle()
        assert tree.status().children[0].state is ChildState.BACKING_OFF
        start = trio.current_time()
    assert trio.current_time() - start < 1.0


def test_duplicate_child_ids_are_refused() -> None:
    journal = Journal()
    with pytest.raises(ValueError, match="duplicate"):
        supervisor("root", [echo_worker("a", journal), supervisor("inner", [echo_worker("a", journal)])])
