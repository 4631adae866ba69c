"""The webhook route reads `event`, `task_id`, `lease_token` and `data` without the JsonObject accessors
when a member is plainly valid; every body must get what the accessors give: the same value or the same
422."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from orch.http.body import JsonObject
from orch.http.problems import ValidationFailed
from orch.http.webhook import _data_member, _optional_str, _required_str

BODIES: list[dict[str, Any]] = [
    {},
    {"task_id": "t1", "event": "task.progress", "lease_token": "lease", "data": {"seq": 1}},
    {"task_id": "", "event": "", "lease_token": ""},
    {"task_id": None, "event": None, "lease_token": None, "data": None},
    {"task_id": "x" * 128, "event": "e" * 128, "lease_token": "l" * 256},
    {"task_id": "x" * 129, "event": "e" * 129, "lease_token": "l" * 257},
    {"task_id": 7, "event": 1.5, "lease_token": ["a"], "data": "text"},
    {"task_id": True, "event": {}, "lease_token": False, "data": [1]},
    {"taskId": "t2", "type": "task.failed", "leaseToken": "other"},
    {"task_id": "t1", "taskId": "t1", "event": "a", "type": "a", "lease_token": "l", "leaseToken": "l"},
    {"task_id": "t1", "taskId": "t2", "event": "a", "type": "b", "lease_token": "l", "leaseToken": "m"},
    {"task_id": None, "taskId": "t3", "event": None, "type": "x", "lease_token": None, "leaseToken": "n"},
]


def outcome(read: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("value", read())
    except ValidationFailed as exc:
        return ("422", (exc.field, str(exc)))


@pytest.mark.parametrize("data", BODIES)
def test_member_readers_answer_as_the_body_accessors_do(data: dict[str, Any]) -> None:
    def fresh() -> JsonObject:
        return JsonObject(data)

    def data_copy() -> dict[str, Any] | None:
        obj = fresh().opt_obj("data")
        return dict(obj.data) if obj is not None else None

    pairs: list[tuple[Callable[[], Any], Callable[[], Any]]] = [
        (
            lambda: _required_str(fresh(), "task_id", "taskId", 128),
            lambda: fresh().req_str("task_id", aliases=("taskId",), max_len=128),
        ),
        (
            lambda: _optional_str(fresh(), "event", "type", 128),
            lambda: fresh().opt_str("event", aliases=("type",), max_len=128),
        ),
        (
            lambda: _optional_str(fresh(), "lease_token", "leaseToken", 256),
            lambda: fresh().opt_str("lease_token", aliases=("leaseToken",), max_len=256),
        ),
        (lambda: _data_member(fresh()), data_copy),
    ]
    for fast, accessor in pairs:
        assert outcome(fast) == outcome(accessor)


def test_the_data_member_is_a_copy() -> None:
    inner = {"lease_token": "l", "seq": 1}
    copied = _data_member(JsonObject({"data": inner}))
    assert copied == inner and copied is not inner
