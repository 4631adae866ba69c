"""Reading worker batch items: the plain fast path takes only well-formed common items and reads them
exactly as the general reader does; everything else gets the general reader's named errors."""

from __future__ import annotations

from typing import Any

import pytest

from actors.dispatcher.messages import HeartbeatAck, HeartbeatItem
from orch.http.problems import NotFound, ValidationFailed
from orch.http.task_views import heartbeat_json
from orch.http.worker_items import (
    heartbeat_many,
    plain_heartbeat,
    plain_report,
    read_heartbeat_item,
    read_items,
    read_report_item,
    report_many,
)

TOKEN = "f" * 32


def _hb(obj: Any) -> Any:
    return read_heartbeat_item(obj, min_lease=1.0, max_lease=3600.0)


@pytest.mark.parametrize(
    "item",
    [
        {"task_id": "t1", "lease_token": TOKEN, "status": "succeeded", "result": {"n": 1}},
        {"task_id": "t1", "lease_token": TOKEN, "status": "failed", "error": "boom"},
        {"task_id": "t1", "lease_token": TOKEN, "status": "running"},
        {"task_id": "t1", "lease_token": TOKEN, "status": "cancelled", "result": None, "error": None},
    ],
)
def test_plain_reports_read_as_the_general_reader_does(item: dict[str, Any]) -> None:
    assert plain_report(item) is not None
    assert read_items([item], "reports", read_report_item, plain_report) == read_items(
        [item], "reports", read_report_item
    )


@pytest.mark.parametrize(
    "item",
    [
        {"task_id": "t1", "lease_token": TOKEN, "status": "queued"},  # an operator's status
        {"task_id": "t1", "lease_token": TOKEN, "status": "sprinted"},
        {"task_id": "t1", "leaseToken": TOKEN, "status": "succeeded"},  # an alias
        {"task_id": "t1", "lease_token": TOKEN, "status": "succeeded", "progress": {}},
        {"task_id": "", "lease_token": TOKEN, "status": "succeeded"},
        {"task_id": "t1", "lease_token": 5, "status": "succeeded"},
        {"task_id": "t1", "lease_token": TOKEN, "status": "succeeded", "result": []},
        {"task_id": "t1", "lease_token": TOKEN, "status": "failed", "error": "x" * 20_000},
        {"task_id": "t1", "lease_token": TOKEN, "status": "succeeded", "extra": 1},
    ],
)
def test_anything_else_goes_to_the_general_reader(item: dict[str, Any]) -> None:
    assert plain_report(item) is None


def test_plain_heartbeats_read_as_the_general_reader_does() -> None:
    item = {"task_id": "t1", "lease_token": TOKEN}
    assert plain_heartbeat(item) is not None
    assert read_items([item], "hb", _hb, plain_heartbeat) == read_items([item], "hb", _hb)
    for other in ({"task_id": "t1", "lease_token": TOKEN, "lease": 5}, {"task_id": "t1"}, {"taskId": "t"}):
        assert plain_heartbeat(other) is None


def test_bad_items_get_their_named_error_in_place() -> None:
    items: list[Any] = [{"task_id": "t1", "lease_token": TOKEN}, {"task_id": "t1"}, 7]
    first, second, third = read_items(items, "heartbeats", _hb, plain_heartbeat)
    assert not isinstance(first, ValidationFailed)
    assert isinstance(second, ValidationFailed) and second.extensions["field"] == "heartbeats.1.lease_token"
    assert isinstance(third, ValidationFailed) and third.extensions["field"] == "heartbeats.2"
    with pytest.raises(ValidationFailed):
        read_items([], "heartbeats", _hb, plain_heartbeat)


class _Ref:
    """Answers every ask with the given outcomes (what the dispatcher would send)."""

    def __init__(self, outcomes: tuple[Any, ...]) -> None:
        self.outcomes = outcomes
        self.asked: list[Any] = []

    async def ask(self, make: Any) -> tuple[Any, ...]:
        self.asked.append(make)
        return self.outcomes


async def test_batch_answers_keep_item_order_with_read_errors_and_refusals_in_place() -> None:
    acks = (
        HeartbeatAck("t1", 1764227581.5, False),
        NotFound("no task t3"),
        HeartbeatAck("t4", 2.0, True),
    )
    parsed: list[Any] = [
        HeartbeatItem("t1", TOKEN),
        ValidationFailed("heartbeats.1.lease_token", "is required"),
        HeartbeatItem("t3", TOKEN),
        HeartbeatItem("t4", TOKEN),
    ]
    answer = await heartbeat_many(_Ref(acks), parsed, "/ws/dispatch")  # type: ignore[arg-type]
    ok1, bad, refused, ok4 = answer["results"]
    assert ok1 == {"ok": True, **heartbeat_json(acks[0])}
    assert list(ok1) == ["ok", "task_id", "lease_expires_at", "cancel_requested"]
    assert ok4 == {"ok": True, **heartbeat_json(acks[2])}
    assert bad["ok"] is False and bad["error"]["status"] == 422
    assert refused["ok"] is False and refused["error"]["status"] == 404


async def test_a_batch_without_valid_items_asks_the_dispatcher_nothing() -> None:
    ref = _Ref(("not a view",))
    answer = await report_many(ref, [], "/x")  # type: ignore[arg-type]
    assert answer == {"results": []} and ref.asked == []  # nothing valid: no ask
