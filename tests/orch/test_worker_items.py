"""Reading worker batch items: the plain fast path takes only well-formed common items and reads them
exactly as the general reader does; everything else gets the general reader's named errors."""

from __future__ import annotations

from typing import Any

import pytest

from orch.http.problems import ValidationFailed
from orch.http.worker_items import (
    plain_heartbeat,
    plain_report,
    read_heartbeat_item,
    read_items,
    read_report_item,
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
