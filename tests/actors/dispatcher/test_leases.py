"""Leases: heartbeats extend them, lapses re-queue (attempt counted), stale tokens are refused."""

from __future__ import annotations

import pytest
import trio

from actors.dispatcher.messages import Heartbeat, Report, ReportStatus, StaleLease, TaskNotFound, TaskStatus

from .harness import Harness


async def test_heartbeat_extends_the_lease_and_records_progress(
    dispatcher: Harness, clock: trio.abc.Clock
) -> None:
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c", lease=10.0)
    for _ in range(5):
        await trio.sleep(6)
        ack = await dispatcher.heartbeat(claimed, progress={"pct": 50})
        assert not ack.cancel_requested
    task = await dispatcher.get(claimed.task.id)
    assert task.status is TaskStatus.CLAIMED  # 30 s later, still held thanks to heartbeats
    assert task.progress == {"pct": 50}
    assert ack.lease_expires_at == task.lease_expires_at
    assert (await dispatcher.event_types(task.id)).count("task.progress") == 5


async def test_heartbeat_can_change_the_lease_length(dispatcher: Harness, clock: trio.abc.Clock) -> None:
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c", lease=5.0)
    ack = await dispatcher.heartbeat(claimed, lease=100.0)
    await trio.sleep(20)  # well past the first 5 s lease
    assert (await dispatcher.get(claimed.task.id)).status is TaskStatus.CLAIMED
    assert claimed.task.lease_expires_at is not None
    assert ack.lease_expires_at > claimed.task.lease_expires_at


async def test_lapsed_lease_requeues_with_the_attempt_counted(
    dispatcher: Harness, clock: trio.abc.Clock
) -> None:
    accepted = await dispatcher.dispatch("c", max_attempts=3)
    first = await dispatcher.claim("c", worker="w1", lease=5.0)
    await trio.sleep(7)
    task = await dispatcher.settles(accepted.task.id, TaskStatus.QUEUED)
    assert task.attempts == 1
    assert task.claimed_by is None and task.lease_expires_at is None
    second = await dispatcher.claim("c", worker="w2", lease=60.0)
    assert second.task.id == accepted.task.id
    assert second.task.attempts == 2
    assert await dispatcher.event_types(task.id) == [
        "task.queued", "task.claimed", "task.queued", "task.claimed",
    ]  # fmt: skip
    with pytest.raises(StaleLease):
        await dispatcher.report(first, "succeeded")
    with pytest.raises(StaleLease):
        await dispatcher.heartbeat(first)
    done = await dispatcher.report(second, "succeeded", result={"ok": True})
    assert done.status is TaskStatus.SUCCEEDED


async def test_lapsed_lease_on_the_last_attempt_makes_the_task_dead(
    dispatcher: Harness, clock: trio.abc.Clock
) -> None:
    accepted = await dispatcher.dispatch("c", max_attempts=1)
    await dispatcher.claim("c", lease=5.0)
    await trio.sleep(7)
    task = await dispatcher.settles(accepted.task.id, TaskStatus.DEAD)
    assert task.error == "lease expired"
    assert task.finished_at is not None
    assert (await dispatcher.event_types(task.id))[-1] == "task.dead"


async def test_report_with_a_wrong_token_is_rejected_and_changes_nothing(dispatcher: Harness) -> None:
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c")
    with pytest.raises(StaleLease):
        await dispatcher.report(claimed, "succeeded", token="not-the-token")
    assert (await dispatcher.get(claimed.task.id)).status is TaskStatus.CLAIMED
    assert await dispatcher.event_types(claimed.task.id) == ["task.queued", "task.claimed"]


async def test_unknown_task_is_not_found(dispatcher: Harness) -> None:
    with pytest.raises(TaskNotFound):
        await dispatcher.get("nope")
    with pytest.raises(TaskNotFound):
        await dispatcher.ref.ask(lambda r: Report("nope", "token", ReportStatus.RUNNING, r))
    with pytest.raises(TaskNotFound):
        await dispatcher.ref.ask(lambda r: Heartbeat("nope", "token", r))
