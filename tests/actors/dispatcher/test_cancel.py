"""Cancel: at once while waiting; flagged and told to the worker while held."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from actors.dispatcher.messages import IllegalTransition, TaskStatus
from actors.dispatcher.policy import RetryPolicy
from actors.dispatcher.sqlite_ops import Rules

from .harness import QUIET, Harness, running_dispatcher


async def test_cancelling_a_queued_task_cancels_it_and_no_worker_gets_it(dispatcher: Harness) -> None:
    accepted = await dispatcher.dispatch("c")
    cancelled = await dispatcher.cancel(accepted.task.id)
    assert cancelled.status is TaskStatus.CANCELLED
    assert cancelled.finished_at is not None
    assert await dispatcher.event_types(accepted.task.id) == ["task.queued", "task.cancelled"]
    other = await dispatcher.dispatch("c")
    assert (await dispatcher.claim("c")).task.id == other.task.id


async def test_cancelling_a_running_task_is_told_in_the_next_heartbeat(dispatcher: Harness) -> None:
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c")
    await dispatcher.report(claimed, "running")
    flagged = await dispatcher.cancel(claimed.task.id)
    assert flagged.status is TaskStatus.RUNNING
    assert flagged.cancel_requested
    assert await dispatcher.cancel(claimed.task.id) == flagged  # repeating it changes nothing
    ack = await dispatcher.heartbeat(claimed)
    assert ack.cancel_requested
    done = await dispatcher.report(claimed, "cancelled")
    assert done.status is TaskStatus.CANCELLED
    assert (await dispatcher.event_types(done.id))[-2:] == ["task.cancel_requested", "task.cancelled"]


async def test_a_failing_attempt_with_cancel_requested_is_not_retried(dispatcher: Harness) -> None:
    await dispatcher.dispatch("c", max_attempts=5)
    claimed = await dispatcher.claim("c")
    await dispatcher.cancel(claimed.task.id)
    after = await dispatcher.report(claimed, "failed", error="stopped")
    assert after.status is TaskStatus.CANCELLED
    assert (await dispatcher.event_types(after.id))[-2:] == ["task.failed", "task.cancelled"]


async def test_cancel_requested_task_whose_lease_lapses_ends_cancelled(
    dispatcher: Harness, clock: trio.abc.Clock
) -> None:
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c", lease=5.0)
    await dispatcher.cancel(claimed.task.id)
    await trio.sleep(7)
    await dispatcher.settles(claimed.task.id, TaskStatus.CANCELLED)


async def test_cancelling_a_retrying_task_cancels_it(db_path: Path, clock: trio.abc.Clock) -> None:
    rules = Rules(retry=RetryPolicy(base_s=100.0, jitter=0.0))
    async with running_dispatcher(db_path, config=QUIET, rules=rules) as d:
        await d.dispatch("c")
        claimed = await d.claim("c")
        assert (await d.report(claimed, "failed")).status is TaskStatus.RETRYING
        assert (await d.cancel(claimed.task.id)).status is TaskStatus.CANCELLED
        await trio.sleep(150)
        assert (await d.get(claimed.task.id)).status is TaskStatus.CANCELLED


async def test_cancelling_a_finished_task_is_illegal(dispatcher: Harness) -> None:
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c")
    await dispatcher.report(claimed, "succeeded")
    with pytest.raises(IllegalTransition) as info:
        await dispatcher.cancel(claimed.task.id)
    assert (info.value.current, info.value.target) == (TaskStatus.SUCCEEDED, TaskStatus.CANCELLED)
