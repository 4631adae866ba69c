"""The dispatcher's hot messages built by `positional_builder` equal the ones their constructors build."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest

from actors.dispatcher.messages import (
    DispatchAccepted,
    HeartbeatItem,
    ReportItem,
    ReportStatus,
    TaskSpec,
    TaskStatus,
    TaskView,
    build_heartbeat_item,
    build_report_item,
)
from actors.dispatcher.store import (
    Change,
    ClaimRequest,
    Dispatched,
    HeartbeatCmd,
    ReportCmd,
    build_claim_request,
    build_heartbeat_cmd,
    build_report_cmd,
)
from runtime import positional_builder

VIEW = TaskView(
    "t1", "c", 3, TaskStatus.QUEUED, 0, 3, 2.5, {"k": [1, 2]}, True, "key", 10.0, None, None, None,
    False, None, {"r": 1}, "boom", 9.0, 9.5, None,
)  # fmt: skip
SAMPLES: list[Any] = [
    TaskSpec("c", 5, 1.5, {"a": 1}, True, "key", 7, 12.0),
    VIEW,
    DispatchAccepted(VIEW, True, 4, 11.0),
    Dispatched(VIEW, False),
    Change("c", 2, TaskStatus.QUEUED, TaskStatus.CLAIMED, 3.0),
]


def values(obj: Any) -> list[Any]:
    return [getattr(obj, f.name) for f in dataclasses.fields(obj)]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_builds_a_message_equal_to_the_constructors(sample: Any) -> None:
    built = positional_builder(type(sample))(*values(sample))
    assert type(built) is type(sample)
    assert built == sample and repr(built) == repr(sample)
    assert pickle.loads(pickle.dumps(built)) == built
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, dataclasses.fields(built)[0].name, None)


def test_a_built_change_hashes_as_the_constructors() -> None:
    change = SAMPLES[-1]
    assert hash(positional_builder(Change)(*values(change))) == hash(change)


def test_the_per_item_builders_build_what_the_constructors_build() -> None:
    progress, result = {"p": 1}, {"ok": True}
    status = ReportStatus.SUCCEEDED
    pairs: list[tuple[Any, Any]] = [
        (build_heartbeat_item("t", "tok", progress, 5.0), HeartbeatItem("t", "tok", progress, 5.0)),
        (build_heartbeat_item("t", "tok", None, None), HeartbeatItem("t", "tok")),
        (build_report_item("t", "tok", status, result, None, None), ReportItem("t", "tok", status, result)),
        (build_heartbeat_cmd("t", "tok", 5.0, progress), HeartbeatCmd("t", "tok", 5.0, progress)),
        (
            build_report_cmd("t", "tok", status, result, "e", progress),
            ReportCmd("t", "tok", status, result, "e", progress),
        ),
        (build_claim_request("w", 30.0), ClaimRequest("w", 30.0)),
    ]
    for built, constructed in pairs:
        assert type(built) is type(constructed)
        assert built == constructed and repr(built) == repr(constructed)
