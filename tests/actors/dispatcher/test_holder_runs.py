"""`TaskStore.execute` runs of heartbeats and reports: one read, one write, per-item semantics kept."""

from __future__ import annotations

from typing import Any

from actors.dispatcher.messages import (
    ClaimedTask,
    ClaimMany,
    HeartbeatAck,
    ReportStatus,
    StaleLease,
    TaskNotFound,
    TaskStatus,
    TaskView,
)
from actors.dispatcher.store import CancelCmd, Command, HeartbeatCmd, ReportCmd
from actors.storage import StoredEvent

from .harness import LONG, Harness, trio_clock

R = ReportStatus


async def held_tasks(d: Harness, n: int) -> tuple[ClaimedTask, ...]:
    for _ in range(n):
        await d.dispatch("c", max_attempts=3)
    claimed: tuple[ClaimedTask, ...] = await d.ref.ask(lambda r: ClaimMany("c", "w1", r, max=n, lease=LONG))
    assert len(claimed) == n
    return claimed


def report(c: ClaimedTask, status: ReportStatus, token: str | None = None, **fields: Any) -> ReportCmd:
    return ReportCmd(
        c.task.id,
        c.lease_token if token is None else token,
        status,
        fields.get("result"),
        fields.get("error"),
        fields.get("progress"),
    )


def beat(c: ClaimedTask, progress: dict[str, Any] | None = None, lease: float | None = None) -> HeartbeatCmd:
    return HeartbeatCmd(c.task.id, c.lease_token, lease, progress)


async def execute(
    d: Harness, *commands: Command, now: float | None = None
) -> tuple[list[Any], list[StoredEvent]]:
    """The store's answers and the events the batch published."""
    before = len(d.published)
    results = await d.store.execute(list(commands), trio_clock() if now is None else now)
    return [r if isinstance(r, Exception) else r.value for r in results], d.published[before:]


def seqs_are_consecutive(events: list[StoredEvent]) -> bool:
    return [e.seq for e in events] == list(range(events[0].seq, events[0].seq + len(events)))


async def test_a_mixed_run_answers_in_item_order_and_a_refused_item_leaves_nothing(
    dispatcher: Harness,
) -> None:
    a, b, c = await held_tasks(dispatcher, 3)
    answers, events = await execute(
        dispatcher,
        beat(a),
        report(b, R.SUCCEEDED, token="0" * 32),
        report(c, R.SUCCEEDED, result={"n": 1}),
        HeartbeatCmd("nope", "x", None, None),
        beat(b, progress={"pct": 5}),
        report(a, R.FAILED, error="boom"),  # a named again: a new run, after the heartbeat's write
    )
    assert isinstance(answers[0], HeartbeatAck) and answers[0].task_id == a.task.id
    assert isinstance(answers[1], StaleLease)
    assert isinstance(answers[2], TaskView) and answers[2].status is TaskStatus.SUCCEEDED
    assert answers[2].result == {"n": 1}
    assert isinstance(answers[3], TaskNotFound)
    assert isinstance(answers[4], HeartbeatAck) and answers[4].task_id == b.task.id
    assert isinstance(answers[5], TaskView) and answers[5].status is TaskStatus.RETRYING
    assert [(e.subject, e.type) for e in events] == [
        (c.task.id, "task.running"),
        (c.task.id, "task.succeeded"),
        (b.task.id, "task.progress"),
        (a.task.id, "task.running"),
        (a.task.id, "task.failed"),
        (a.task.id, "task.retrying"),
    ]
    assert seqs_are_consecutive(events)
    assert await dispatcher.db.events_after(events[0].seq - 1) == events  # as published, as stored
    task_b = await dispatcher.get(b.task.id)
    assert task_b.status is TaskStatus.CLAIMED and task_b.progress == {"pct": 5}  # the refusal left nothing


async def test_a_task_named_twice_sees_its_first_item_applied(dispatcher: Harness) -> None:
    a, b = await held_tasks(dispatcher, 2)
    answers, events = await execute(
        dispatcher,
        report(a, R.RUNNING),
        report(b, R.SUCCEEDED),
        report(a, R.PROGRESS, progress={"pct": 50}),
        beat(b),  # b ended in this batch: its lease is over
        report(a, R.SUCCEEDED, result={"ok": True}),
        report(a, R.SUCCEEDED, result={"ok": True}),  # the repeat of a final report: same answer, no event
    )
    assert [type(x).__name__ for x in answers] == ["TaskView"] * 3 + ["StaleLease"] + ["TaskView"] * 2
    assert [x.status for x in answers if isinstance(x, TaskView)] == [
        TaskStatus.RUNNING,
        TaskStatus.SUCCEEDED,
        TaskStatus.RUNNING,
        TaskStatus.SUCCEEDED,
        TaskStatus.SUCCEEDED,
    ]
    assert answers[2].progress == {"pct": 50}
    assert [(e.subject, e.type) for e in events] == [
        (a.task.id, "task.running"),
        (b.task.id, "task.running"),
        (b.task.id, "task.succeeded"),
        (a.task.id, "task.progress"),
        (a.task.id, "task.succeeded"),
    ]
    assert seqs_are_consecutive(events)
    done = await dispatcher.get(a.task.id)
    assert (
        done.status is TaskStatus.SUCCEEDED and done.result == {"ok": True} and done.progress == {"pct": 50}
    )


async def test_runs_and_other_commands_keep_their_order(dispatcher: Harness) -> None:
    a, b, c = await held_tasks(dispatcher, 3)
    answers, events = await execute(
        dispatcher, report(a, R.SUCCEEDED), CancelCmd(b.task.id, "stop"), beat(b), report(c, R.SUCCEEDED)
    )
    assert isinstance(answers[2], HeartbeatAck) and answers[2].cancel_requested  # the cancel came first
    assert [(e.subject, e.type) for e in events] == [
        (a.task.id, "task.running"),
        (a.task.id, "task.succeeded"),
        (b.task.id, "task.cancel_requested"),
        (c.task.id, "task.running"),
        (c.task.id, "task.succeeded"),
    ]
    assert seqs_are_consecutive(events)


async def test_a_run_of_heartbeats_extends_each_lease_as_asked(dispatcher: Harness) -> None:
    a, b = await held_tasks(dispatcher, 2)
    now = trio_clock()
    answers, events = await execute(dispatcher, beat(a, lease=100.0), beat(b), now=now)
    assert events == []
    assert [x.lease_expires_at for x in answers] == [now + 100.0, now + LONG]
    assert (await dispatcher.get(a.task.id)).lease_expires_at == now + 100.0
    again, _ = await execute(dispatcher, beat(a), now=now)  # the new lease length stays
    assert again[0].lease_expires_at == now + 100.0


async def test_an_id_sqlite_cannot_bind_is_simply_not_found(dispatcher: Harness) -> None:
    (a,) = await held_tasks(dispatcher, 1)
    answers, _ = await execute(dispatcher, HeartbeatCmd("bad\ud800", "x", None, None), beat(a))
    assert isinstance(answers[0], TaskNotFound) and isinstance(answers[1], HeartbeatAck)
