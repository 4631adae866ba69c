"""Core isolation, restore, forced re-queue and health: the monitor's recovery actions on the dispatcher."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from actors.dispatcher.messages import (
    ClaimedTask,
    CoreHealth,
    CoreHealthView,
    CoreState,
    InvalidTask,
    IsolateCore,
    ListCores,
    RequeueCore,
    RestoreCore,
    StaleLease,
    TaskStatus,
)
from actors.storage import StoredEvent

from .harness import Harness, running_dispatcher


async def isolate(d: Harness, core: str, fallback: str | None = None, reason: str | None = None) -> CoreState:
    return await d.ref.ask(lambda r: IsolateCore(core, r, fallback=fallback, reason=reason))


async def restore(d: Harness, core: str) -> CoreState:
    return await d.ref.ask(lambda r: RestoreCore(core, r))


async def requeue_core(d: Harness, core: str) -> int:
    return await d.ref.ask(lambda r: RequeueCore(core, r, reason="worker silent"))


async def health(d: Harness, core: str) -> CoreHealthView:
    return await d.ref.ask(lambda r: CoreHealth(core, r))


async def core_events(d: Harness) -> list[StoredEvent]:
    return await d.db.events_after(0, topics=("core",))


async def must_claim(d: Harness, core: str, worker: str = "w1") -> ClaimedTask:
    with trio.fail_after(30):  # fail, never hang, when routing is broken
        return await d.claim(core, worker=worker)


async def claim_within(d: Harness, core: str, seconds: float, worker: str = "w1") -> ClaimedTask | None:
    with trio.move_on_after(seconds):
        return await d.claim(core, worker=worker)
    return None


async def test_claims_for_an_isolated_core_get_nothing_until_it_is_restored(
    dispatcher: Harness, clock: trio.abc.Clock
) -> None:
    accepted = await dispatcher.dispatch("x")
    state = await isolate(dispatcher, "x", reason="probe failed")
    assert state.isolated and state.changed and state.reason == "probe failed"
    assert await claim_within(dispatcher, "x", 10.0) is None
    assert (await dispatcher.get(accepted.task.id)).status is TaskStatus.QUEUED
    got: list[ClaimedTask] = []

    async def parked_claim() -> None:
        got.append(await must_claim(dispatcher, "x"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(parked_claim)
        await trio.sleep(5)
        assert not got  # still parked while isolated
        restored = await restore(dispatcher, "x")
        assert not restored.isolated and restored.changed
    assert got[0].task.id == accepted.task.id  # the parked claim is served at once on restore
    assert [e.type for e in await core_events(dispatcher)] == ["core.isolated", "core.restored"]


async def test_isolation_with_a_fallback_lets_the_fallback_workers_take_its_tasks(
    dispatcher: Harness, clock: trio.abc.Clock
) -> None:
    own = await dispatcher.dispatch("f")
    await trio.sleep(1)
    urgent = await dispatcher.dispatch("x", priority=5)
    later = await dispatcher.dispatch("x")
    await isolate(dispatcher, "x", fallback="f")
    assert await claim_within(dispatcher, "x", 3.0) is None  # the isolated core's own workers get nothing
    order = [(await must_claim(dispatcher, "f", worker=f"fw{i}")).task.id for i in range(3)]
    assert order == [urgent.task.id, own.task.id, later.task.id]  # best rank first across both cores
    task = await dispatcher.get(urgent.task.id)
    assert task.core_id == "x" and task.claimed_by == "fw0"  # tasks keep their core
    events = await dispatcher.db.events_after(0, subject=urgent.task.id)
    assert events[-1].type == "task.claimed" and events[-1].data["claimed_for"] == "f"


async def test_a_dispatch_to_an_isolated_core_wakes_a_parked_fallback_claim(
    dispatcher: Harness, clock: trio.abc.Clock
) -> None:
    await isolate(dispatcher, "x", fallback="f")
    got: list[ClaimedTask] = []

    async def parked_claim() -> None:
        got.append(await must_claim(dispatcher, "f"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(parked_claim)
        await trio.sleep(2)
        accepted = await dispatcher.dispatch("x")
    assert got[0].task.id == accepted.task.id


async def test_fallbacks_are_not_chained(dispatcher: Harness, clock: trio.abc.Clock) -> None:
    await dispatcher.dispatch("x")
    await isolate(dispatcher, "x", fallback="f")
    await isolate(dispatcher, "f", fallback="g")
    assert await claim_within(dispatcher, "g", 3.0) is None  # x's tasks wait while f is isolated too
    await restore(dispatcher, "f")
    claimed = await claim_within(dispatcher, "f", 3.0)
    assert claimed is not None and claimed.task.core_id == "x"


async def test_isolation_survives_a_restart(db_path: Path, clock: trio.abc.Clock) -> None:
    async with running_dispatcher(db_path) as d:
        accepted = await d.dispatch("x")
        await isolate(d, "x", fallback="f", reason="flapping")
    async with running_dispatcher(db_path) as d:
        assert await claim_within(d, "x", 3.0) is None
        view = await health(d, "x")
        assert view.isolated and view.fallback == "f" and view.isolation_reason == "flapping"
        assert (await must_claim(d, "f")).task.id == accepted.task.id


async def test_isolating_twice_changes_nothing_and_writes_one_event(
    dispatcher: Harness, clock: trio.abc.Clock
) -> None:
    first = await isolate(dispatcher, "x", fallback="f")
    await trio.sleep(3)
    again = await isolate(dispatcher, "x", fallback="f")
    assert not again.changed and again.since == first.since
    moved = await isolate(dispatcher, "x", fallback="g")
    assert moved.changed and moved.fallback == "g" and moved.since == first.since
    assert not (await restore(dispatcher, "y")).changed  # never isolated: nothing to do
    events = await core_events(dispatcher)
    assert [(e.type, e.data["fallback"]) for e in events] == [("core.isolated", "f"), ("core.isolated", "g")]


async def test_a_core_cannot_be_its_own_fallback(dispatcher: Harness) -> None:
    with pytest.raises(InvalidTask):
        await isolate(dispatcher, "x", fallback="x")
    with pytest.raises(InvalidTask):
        await isolate(dispatcher, "")


async def test_requeue_core_takes_back_held_tasks_as_a_lapsed_lease_would(
    dispatcher: Harness, clock: trio.abc.Clock
) -> None:
    a = await dispatcher.dispatch("x", max_attempts=3)
    b = await dispatcher.dispatch("x", max_attempts=1)
    other = await dispatcher.dispatch("y")
    held_a = await dispatcher.claim("x", worker="w1")
    held_b = await dispatcher.claim("x", worker="w2")
    await dispatcher.report(held_b, "running")
    held_other = await dispatcher.claim("y", worker="w3")
    assert await requeue_core(dispatcher, "x") == 2
    task_a = await dispatcher.get(a.task.id)
    assert task_a.status is TaskStatus.QUEUED and task_a.attempts == 1 and task_a.claimed_by is None
    assert (await dispatcher.get(b.task.id)).status is TaskStatus.DEAD  # its only attempt is spent
    assert (await dispatcher.get(other.task.id)).status is TaskStatus.CLAIMED  # another core: untouched
    with pytest.raises(StaleLease):
        await dispatcher.heartbeat(held_a)
    with pytest.raises(StaleLease):
        await dispatcher.report(held_b, "succeeded")
    again = await must_claim(dispatcher, "x", worker="w4")
    assert again.task.id == a.task.id and again.task.attempts == 2
    events = await core_events(dispatcher)
    assert events[-1].type == "core.requeued"
    assert events[-1].data == {"tasks": 2, "outcomes": {"queued": 1, "dead": 1}, "reason": "worker silent"}
    assert held_other.task.id == other.task.id


async def test_requeue_of_an_idle_core_is_recorded_and_takes_nothing(dispatcher: Harness) -> None:
    assert await requeue_core(dispatcher, "nobody") == 0
    assert [e.type for e in await core_events(dispatcher)] == ["core.requeued"]


async def test_core_health_shows_counts_isolation_and_a_silent_worker(
    dispatcher: Harness, clock: trio.abc.Clock
) -> None:
    for _ in range(3):
        await dispatcher.dispatch("x")
    lively = await dispatcher.claim("x", worker="lively", lease=60.0)
    silent = await dispatcher.claim("x", worker="silent", lease=60.0)
    await dispatcher.report(silent, "running")
    for _ in range(4):
        await trio.sleep(10)
        await dispatcher.heartbeat(lively)
    view = await health(dispatcher, "x")
    assert (view.queued, view.claimed, view.running, view.isolated) == (1, 1, 1, False)
    assert view.last_heartbeat_at is not None and view.stalest_heartbeat_at is not None
    assert view.last_heartbeat_at - view.stalest_heartbeat_at == pytest.approx(40.0, abs=1.0)
    assert view.last_claim_at is not None and view.last_claim_at < view.last_heartbeat_at
    await isolate(dispatcher, "x")
    cores: tuple[CoreHealthView, ...] = await dispatcher.ref.ask(lambda r: ListCores(r))
    assert [(c.core_id, c.isolated) for c in cores] == [("x", True)]
    unknown = await health(dispatcher, "never-used")
    assert (unknown.queued, unknown.isolated, unknown.last_heartbeat_at) == (0, False, None)
