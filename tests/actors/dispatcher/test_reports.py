"""Reports: the lifecycle through running to an end, retries with backoff, dead letters and requeue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.dispatcher.messages import IllegalTransition, StaleLease, TaskStatus
from actors.dispatcher.policy import RetryPolicy
from actors.dispatcher.sqlite_ops import Rules

from .harness import Harness, running_dispatcher


async def test_running_then_succeeded_stores_the_result_and_every_event(dispatcher: Harness) -> None:
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c")
    running = await dispatcher.report(claimed, "running")
    assert running.status is TaskStatus.RUNNING
    await dispatcher.report(claimed, "progress", progress={"step": 2})
    done = await dispatcher.report(claimed, "succeeded", result={"answer": 42})
    assert done.status is TaskStatus.SUCCEEDED
    assert done.result == {"answer": 42}
    assert done.progress == {"step": 2}
    assert done.finished_at is not None and done.lease_expires_at is None
    assert await dispatcher.event_types(done.id) == [
        "task.queued", "task.claimed", "task.running", "task.progress", "task.succeeded",
    ]  # fmt: skip
    assert await dispatcher.get(done.id) == done


async def test_final_report_straight_from_claimed_passes_through_running(dispatcher: Harness) -> None:
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c")
    done = await dispatcher.report(claimed, "succeeded")
    assert (await dispatcher.event_types(done.id))[-2:] == ["task.running", "task.succeeded"]


async def test_repeated_final_report_returns_the_task_unchanged(dispatcher: Harness) -> None:
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c")
    done = await dispatcher.report(claimed, "succeeded", result={"n": 1})
    again = await dispatcher.report(claimed, "succeeded", result={"n": 2})
    assert again == done
    with pytest.raises(StaleLease):
        await dispatcher.report(claimed, "failed", error="late")
    assert (await dispatcher.event_types(done.id)).count("task.succeeded") == 1


async def test_failure_retries_after_backoff_then_goes_dead(db_path: Path, clock: trio.abc.Clock) -> None:
    rules = Rules(retry=RetryPolicy(base_s=10.0, factor=2.0, cap_s=100.0, jitter=0.0))
    async with running_dispatcher(db_path, rules=rules) as d:
        accepted = await d.dispatch("c", max_attempts=3)
        claimed_at: list[float] = []
        for attempt in (1, 2, 3):
            claimed = await d.claim("c")
            claimed_at.append(trio.current_time())
            assert claimed.task.attempts == attempt
            after = await d.report(claimed, "failed", error=f"boom {attempt}")
            if attempt < 3:
                assert after.status is TaskStatus.RETRYING
                assert after.not_before == pytest.approx(after.updated_at + 10.0 * 2 ** (attempt - 1))
        assert claimed_at[1] - claimed_at[0] >= 10.0
        assert claimed_at[2] - claimed_at[1] >= 20.0
        assert after.status is TaskStatus.DEAD
        assert after.error == "boom 3"
        types = await d.event_types(accepted.task.id)
        assert types.count("task.failed") == 3
        assert types.count("task.retrying") == 2
        assert types[-2:] == ["task.failed", "task.dead"]


async def test_dead_task_can_be_requeued_by_an_operator(dispatcher: Harness) -> None:
    accepted = await dispatcher.dispatch("c", max_attempts=1)
    claimed = await dispatcher.claim("c")
    dead = await dispatcher.report(claimed, "failed", error="x")
    assert dead.status is TaskStatus.DEAD
    requeued = await dispatcher.requeue(accepted.task.id)
    assert requeued.status is TaskStatus.QUEUED
    assert requeued.attempts == 0 and requeued.finished_at is None
    again = await dispatcher.claim("c")
    assert again.task.id == accepted.task.id
    assert (await dispatcher.report(again, "succeeded")).status is TaskStatus.SUCCEEDED


async def test_requeue_of_a_task_that_is_not_dead_is_illegal(dispatcher: Harness) -> None:
    accepted = await dispatcher.dispatch("c")
    with pytest.raises(IllegalTransition) as info:
        await dispatcher.requeue(accepted.task.id)
    assert info.value.current is TaskStatus.QUEUED


async def test_timed_out_task_retries_and_its_holder_loses_the_lease(
    dispatcher: Harness, clock: trio.abc.Clock
) -> None:
    accepted = await dispatcher.dispatch("c", timeout=5.0, max_attempts=2)
    claimed = await dispatcher.claim("c")
    await dispatcher.report(claimed, "running")
    await dispatcher.heartbeat(claimed)
    await trio.sleep(7)
    task = await dispatcher.settles(accepted.task.id, TaskStatus.RETRYING, TaskStatus.QUEUED)
    assert task.error == "timed out after 5 s"
    with pytest.raises(StaleLease):
        await dispatcher.heartbeat(claimed)
    with pytest.raises(StaleLease):
        await dispatcher.report(claimed, "succeeded")
    second = await dispatcher.claim("c")
    assert second.task.attempts == 2
    await trio.sleep(7)
    task = await dispatcher.settles(accepted.task.id, TaskStatus.DEAD)
    types = await dispatcher.event_types(task.id)
    assert types.count("task.timed_out") == 2
    assert types[-1] == "task.dead"


@pytest.mark.parametrize(
    ("task_timeout", "progress"),
    [(None, None), (60.0, None), (None, {"pct": 100})],
    ids=["plain", "deadline", "progress"],
)
async def test_a_success_stores_what_it_answers(
    dispatcher: Harness, task_timeout: float | None, progress: dict[str, int] | None
) -> None:
    await dispatcher.dispatch("c", timeout=task_timeout)
    claimed = await dispatcher.claim("c", worker="w3")
    done = await dispatcher.report(
        claimed, "succeeded", result={"answer": 42, "s": "caf\u00e9"}, progress=progress
    )
    assert await dispatcher.get(done.id) == done
    sql = (
        "SELECT status, lease_token, lease_expires_at, deadline_at, result, progress, updated_at, finished_at"
        " FROM tasks WHERE id = ?"
    )
    row = await dispatcher.db.read(lambda conn: conn.execute(sql, (done.id,)).fetchone())
    assert row[:4] == ("succeeded", claimed.lease_token, None, None)
    assert json.loads(row[4]) == {"answer": 42, "s": "caf\u00e9"}
    assert (row[5] is None) is (progress is None)
    assert row[6] == row[7] == done.finished_at


@pytest.mark.parametrize(
    "result",
    [
        {"answer": 42},
        {
            "big": 2**70,
            "t": (1, 2),
            "s": "caf\u00e9 \U0001f600",
            "n": [1, 2.5, None, -0.0],
            "deep": {"x": {}},
        },
        {"lone": "\ud800", "u64": 2**64 - 1},
    ],
    ids=["plain", "unusual", "stdlib-only"],
)
async def test_the_success_event_is_published_as_it_replays(
    dispatcher: Harness, result: dict[str, Any]
) -> None:
    await dispatcher.dispatch("c")
    claimed = await dispatcher.claim("c")
    done = await dispatcher.report(claimed, "succeeded", result=result)
    live = [e for e in dispatcher.published if e.subject == done.id and e.type == "task.succeeded"]
    replayed = [e for e in await dispatcher.db.events_after(0) if e.type == "task.succeeded"]
    assert live == replayed and len(live) == 1
    assert live[0].data == {"attempt": 1, "result": json.loads(json.dumps(result))}
    stored = await dispatcher.db.read(
        lambda conn: conn.execute("SELECT result FROM tasks WHERE id = ?", (done.id,)).fetchone()[0]
    )
    assert json.loads(stored) == json.loads(json.dumps(result))
