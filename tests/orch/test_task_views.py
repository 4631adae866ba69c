"""The API's timestamps: `iso` writes exactly what datetime writes, cached or not; the dispatch answer is
the task's shape plus the acceptance members."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from types import MappingProxyType

import pytest

from actors.dispatcher.messages import DispatchAccepted, TaskStatus, TaskView
from orch.http.task_views import accepted_json, iso, task_json

EDGES = [
    0.0, 0.0005, 0.0004999, 0.9999995, 0.9999994, 1.9999995, 1e9 + 0.9999995, 1764227581.123456,
    1764227581.9995, 1764227581.0000005, 253402300799.999, 1.5e-7, -1.5, -1e-7, -86400.9999995,
]  # fmt: skip


def reference(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


@pytest.mark.parametrize("ts", EDGES)
def test_iso_matches_datetime_at_rounding_edges(ts: float) -> None:
    assert iso(ts) == reference(ts)


def test_iso_matches_datetime_on_random_and_repeated_timestamps() -> None:
    rng = random.Random(7)
    stamps = [rng.uniform(0, 4e9) for _ in range(5000)]
    stamps += [round(rng.uniform(1.7e9, 1.8e9), rng.randrange(8)) for _ in range(5000)]
    stamps += [1764227581 + k / 1e6 for k in range(0, 2_000_000, 997)]
    for ts in stamps + stamps[::-1]:  # the second pass hits the caches
        assert iso(ts) == reference(ts), ts


def test_iso_keeps_none() -> None:
    assert iso(None) is None


def _view(**changes: object) -> TaskView:
    fields: dict[str, object] = {
        "id": "t1", "core_id": "C", "priority": 2, "status": TaskStatus.QUEUED, "attempts": 0,
        "max_attempts": 3, "timeout_s": None, "metadata": {"k": 1}, "stay": False, "idempotency_key": None,
        "not_before": 1764227581.5, "claimed_by": None, "lease_expires_at": None, "deadline_at": None,
        "cancel_requested": False, "progress": None, "result": None, "error": None,
        "created_at": 1764227581.5, "updated_at": 1764227581.5, "finished_at": None,
    }  # fmt: skip
    fields.update(changes)
    return TaskView(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "view",
    [
        _view(),
        _view(
            status=TaskStatus.SUCCEEDED, timeout_s=2.5, idempotency_key="k", claimed_by="w",
            lease_expires_at=1.25, deadline_at=2.5, cancel_requested=True, progress={"p": 1},
            result={"r": [1]}, error="e", finished_at=1764227582.0, stay=True,
        ),
    ],
)  # fmt: skip
@pytest.mark.parametrize("start", [None, 1764227590.25])
def test_accepted_json_is_task_json_plus_the_acceptance(view: TaskView, start: float | None) -> None:
    accepted = DispatchAccepted(task=view, created=False, queue_position=7, estimated_start=start)
    expected = {**task_json(view), "created": False, "queue_position": 7, "estimated_start": iso(start)}
    answer = accepted_json(accepted)
    assert answer == expected
    assert list(answer) == list(expected)  # the same member order


@pytest.mark.parametrize("status", list(TaskStatus))
def test_task_json_status_is_the_plain_value_and_finished_only_when_final(status: TaskStatus) -> None:
    answer = task_json(_view(status=status))
    assert type(answer["status"]) is str and answer["status"] == status.value
    assert answer["finished"] is (status in (TaskStatus.SUCCEEDED, TaskStatus.CANCELLED, TaskStatus.DEAD))


def test_task_json_gives_plain_dicts_for_other_mappings() -> None:
    view = _view(
        metadata=MappingProxyType({"k": 1}), progress=MappingProxyType({"p": 2}), result=MappingProxyType({})
    )
    answer = task_json(view)
    assert answer["metadata"] == {"k": 1} and type(answer["metadata"]) is dict
    assert answer["progress"] == {"p": 2} and type(answer["progress"]) is dict
    assert answer["result"] == {} and type(answer["result"]) is dict


def test_task_json_timestamps_match_iso_cached_or_not() -> None:
    stamps = {
        "not_before": 1764227581.0004, "lease_expires_at": 1764227611.5, "deadline_at": 1764227641.9995,
        "created_at": 1764227580.25, "updated_at": 1764227581.0004, "finished_at": 1764227599.0,
    }  # fmt: skip
    for _ in range(2):  # the second pass hits the cache
        answer = task_json(_view(**stamps))
        assert {k: answer[k] for k in stamps} == {k: reference(v) for k, v in stamps.items()}
