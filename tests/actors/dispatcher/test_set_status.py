"""Lease-free status changes (operators, integrations) and hand-backs by the holder, through the messages."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from actors.dispatcher.messages import (
    IllegalTransition,
    InvalidTask,
    Release,
    SetStatus,
    StaleLease,
    TaskNotFound,
    TaskStatus,
    TaskView,
)
from actors.storage import StoredEvent

from .harness import Harness

S = TaskStatus


async def set_status(d: Harness, task_id: str, status: str, **fields: Any) -> TaskView:
    return await d.ref.ask(lambda r: SetStatus(task_id, TaskStatus(status), r, **fields))


async def release(d: Harness, task_id: str, token: str, reason: str | None = None) -> TaskView:
    return await d.ref.ask(lambda r: Release(task_id, token, r, reason=reason))


async def events(d: Harness, task_id: str) -> list[StoredEvent]:
    return await d.db.events_after(0, subject=task_id)


async def test_an_integration_completes_a_running_task_without_the_lease(dispatcher: Harness) -> None:
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c")
    await dispatcher.report(claimed, "running")
    done = await set_status(
        dispatcher, claimed.task.id, "succeeded", result={"rows": 3}, principal="ci-bot", reason="webhook"
    )
    assert done.status is S.SUCCEEDED and done.result == {"rows": 3}
    assert done.finished_at is not None and done.lease_expires_at is None
    last = (await events(dispatcher, done.id))[-1]
    assert last.type == "task.succeeded"
    assert (
        last.data["lease_free"] is True and last.data["by"] == "ci-bot" and last.data["detail"] == "webhook"
    )
    with pytest.raises(StaleLease):  # the worker that held it is told to stop, and cannot complete it twice
        await dispatcher.heartbeat(claimed)
    with pytest.raises(StaleLease):
        await dispatcher.report(claimed, "succeeded")


async def test_a_claimed_task_completed_without_the_lease_passes_through_running(dispatcher: Harness) -> None:
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c")
    await set_status(dispatcher, claimed.task.id, "succeeded")
    assert await dispatcher.event_types(claimed.task.id) == [
        "task.queued", "task.claimed", "task.running", "task.succeeded",
    ]  # fmt: skip


async def test_an_operator_marks_a_running_task_failed_and_it_retries(
    dispatcher: Harness, clock: trio.abc.Clock
) -> None:
    accepted = await dispatcher.dispatch("c", max_attempts=2)
    first = await dispatcher.claim("c")
    await dispatcher.report(first, "running")
    failed = await set_status(dispatcher, accepted.task.id, "failed", error="stuck on I/O", principal="ops")
    assert failed.status is S.RETRYING and failed.error == "stuck on I/O" and failed.attempts == 1
    await dispatcher.settles(accepted.task.id, S.QUEUED)
    second = await dispatcher.claim("c")
    assert second.task.attempts == 2
    dead = await set_status(dispatcher, accepted.task.id, "failed")
    assert dead.status is S.DEAD  # no attempt left
    assert dead.error == "marked failed without a lease"


async def test_illegal_lease_free_transitions_are_refused_and_change_nothing(dispatcher: Harness) -> None:
    queued = await dispatcher.dispatch("c")
    before = await dispatcher.event_types(queued.task.id)
    for target in ("succeeded", "failed", "timed_out", "dead", "running", "queued"):
        with pytest.raises(IllegalTransition):
            await set_status(dispatcher, queued.task.id, target)
    assert await dispatcher.event_types(queued.task.id) == before
    assert (await dispatcher.get(queued.task.id)).status is S.QUEUED
    claimed = await dispatcher.claim("c")
    await dispatcher.report(claimed, "succeeded")
    with pytest.raises(IllegalTransition):
        await set_status(dispatcher, queued.task.id, "running")
    with pytest.raises(IllegalTransition):
        await set_status(dispatcher, queued.task.id, "failed")
    with pytest.raises(TaskNotFound):
        await set_status(dispatcher, "nope", "succeeded")


async def test_claimed_and_retrying_cannot_be_set(dispatcher: Harness) -> None:
    queued = await dispatcher.dispatch("c")
    for target in ("claimed", "retrying"):
        with pytest.raises(InvalidTask):
            await set_status(dispatcher, queued.task.id, target)


async def test_repeating_the_final_status_returns_the_task_unchanged(dispatcher: Harness) -> None:
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c")
    first = await set_status(dispatcher, claimed.task.id, "succeeded", result={"n": 1})
    again = await set_status(dispatcher, claimed.task.id, "succeeded", result={"n": 2})
    assert again == first
    assert (await dispatcher.event_types(first.id)).count("task.succeeded") == 1


async def test_running_without_the_lease_keeps_the_holder_and_records_progress(dispatcher: Harness) -> None:
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c")
    running = await set_status(dispatcher, claimed.task.id, "running", progress={"pct": 10})
    assert running.status is S.RUNNING and running.progress == {"pct": 10}
    ack = await dispatcher.heartbeat(claimed)  # the lease is still the worker's
    assert not ack.cancel_requested
    done = await dispatcher.report(claimed, "succeeded")
    assert done.status is S.SUCCEEDED


async def test_cancelled_without_the_lease_ends_a_task_at_once(dispatcher: Harness) -> None:
    waiting = await dispatcher.dispatch("c")
    assert (await set_status(dispatcher, waiting.task.id, "cancelled")).status is S.CANCELLED
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c")
    await dispatcher.report(claimed, "running")
    stopped = await set_status(dispatcher, claimed.task.id, "cancelled", error="not needed")
    assert stopped.status is S.CANCELLED and stopped.error == "not needed"
    with pytest.raises(StaleLease):
        await dispatcher.heartbeat(claimed)


async def test_queued_without_the_lease_requeues_held_and_dead_tasks(dispatcher: Harness) -> None:
    accepted = await dispatcher.dispatch("c", max_attempts=1)
    claimed = await dispatcher.claim("c", worker="w1")
    back = await set_status(dispatcher, accepted.task.id, "queued", reason="worker wedged")
    assert back.status is S.QUEUED and back.attempts == 1 and back.claimed_by is None  # attempt counted
    again = await dispatcher.claim("c", worker="w2")
    dead = await set_status(dispatcher, accepted.task.id, "dead", error="poison")
    assert dead.status is S.DEAD and dead.error == "poison"
    with pytest.raises(StaleLease):
        await dispatcher.report(again, "succeeded")
    revived = await set_status(dispatcher, accepted.task.id, "queued")
    assert revived.status is S.QUEUED and revived.attempts == 0  # a dead task gets a fresh budget
    assert claimed.task.id == accepted.task.id


async def test_a_released_task_is_queued_again_without_counting_the_attempt(dispatcher: Harness) -> None:
    first = await dispatcher.dispatch("c")
    second = await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c", worker="w1")
    assert claimed.task.id == first.task.id
    await dispatcher.report(claimed, "running")
    back = await release(dispatcher, claimed.task.id, claimed.lease_token, reason="SIGTERM")
    assert back.status is S.QUEUED and back.attempts == 0 and back.claimed_by is None
    last = (await events(dispatcher, first.task.id))[-1]
    assert last.type == "task.queued"
    assert last.data == {"reason": "released", "worker_id": "w1", "attempt": 0, "detail": "SIGTERM"}
    again = await dispatcher.claim("c", worker="w2")
    assert again.task.id == first.task.id and again.task.attempts == 1  # its old place, same attempt
    assert second.task.status is S.QUEUED


async def test_release_needs_the_current_lease(dispatcher: Harness) -> None:
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c")
    with pytest.raises(StaleLease):
        await release(dispatcher, claimed.task.id, "not-the-token")
    await release(dispatcher, claimed.task.id, claimed.lease_token)
    with pytest.raises(StaleLease):  # released: the token is spent
        await release(dispatcher, claimed.task.id, claimed.lease_token)
    with pytest.raises(StaleLease):
        await dispatcher.heartbeat(claimed)


async def test_releasing_a_task_with_a_pending_cancel_cancels_it(dispatcher: Harness) -> None:
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c")
    await dispatcher.cancel(claimed.task.id)
    back = await release(dispatcher, claimed.task.id, claimed.lease_token)
    assert back.status is S.CANCELLED
