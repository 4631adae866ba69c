"""Runs of holders' messages: a run of plain heartbeats reads only the lease columns, and answers exactly
as the same heartbeats do in a run that reads whole rows (beside a report)."""

from __future__ import annotations

from typing import Any

from actors.dispatcher.messages import HeartbeatAck, ReportStatus, StaleLease, TaskNotFound, TaskStatus
from actors.dispatcher.store import HeartbeatCmd, ReportCmd

from .harness import EPOCH, LONG, Harness


def _answers(results: list[Any]) -> list[Any]:
    out: list[Any] = []
    for result in results:
        if isinstance(result, Exception):
            out.append(type(result))
        elif isinstance(result.value, HeartbeatAck):
            out.append(result.value)
        else:
            out.append(result.value.status)
    return out


async def test_plain_heartbeats_answer_alike_alone_or_beside_a_report(dispatcher: Harness) -> None:
    for _ in range(4):
        await dispatcher.dispatch("c")
    a, b, c, d = [await dispatcher.claim("c") for _ in range(4)]
    await dispatcher.cancel(b.task.id)
    plain = [
        HeartbeatCmd(a.task.id, a.lease_token, 40.0, None),
        HeartbeatCmd(b.task.id, b.lease_token, None, None),
        HeartbeatCmd("nope", "x", None, None),
        HeartbeatCmd(c.task.id, "f" * 32, None, None),
    ]
    now = EPOCH + 10.0
    alone = await dispatcher.store.execute(plain, now)
    report = ReportCmd(d.task.id, d.lease_token, ReportStatus.SUCCEEDED, {"ok": True}, None, None)
    beside = await dispatcher.store.execute([*plain, report], now)
    expected = [
        HeartbeatAck(a.task.id, now + 40.0, False),
        HeartbeatAck(b.task.id, now + LONG, True),
        TaskNotFound,
        StaleLease,
    ]
    assert _answers(alone) == expected
    assert _answers(beside) == [*expected, TaskStatus.SUCCEEDED]
    assert (await dispatcher.get(a.task.id)).lease_expires_at == now + 40.0
