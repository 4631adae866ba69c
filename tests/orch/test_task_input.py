"""Batch spec reading: the one-pass path for plain items agrees with the full reader on every input."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from actors.dispatcher.messages import TaskSpec
from orch.http.body import JsonObject
from orch.http.problems import ValidationFailed
from orch.http.task_input import (
    DEFAULT_STAY_WAIT,
    MAX_STAY_WAIT,
    read_dispatch,
    read_task_spec,
    read_task_specs,
)

FIELDS = [
    "core_id", "coreId", "priority", "timeout", "metadata", "stay", "idempotency_key", "idempotencyKey",
    "max_attempts", "maxAttempts", "not_before", "notBefore", "delay", "wait", "wait", "junk",
]  # fmt: skip
VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 3, 5, 1000, 1001, 2**63, 10**400, -(10**400), 0.0, 0.0005, 0.001, 1.5,
    1e308, 3600, 3600.5, float("inf"), float("nan"), -0.5, "", "A", "WORK_01", "a b", "x" * 201, "x" * 200,
    "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00", "soon", [], [1], {}, {"k": 1},
    {str(i): i for i in range(101)},
]  # fmt: skip


def full_reader(item: Any, index: int = 0) -> TaskSpec:
    """The reference: what the batch route did before the one-pass path."""
    if not isinstance(item, dict):
        raise ValidationFailed(f"tasks.{index}", "must be an object")
    body = JsonObject(item, prefix=f"tasks.{index}.")
    spec = read_task_spec(body)
    body.reject_unknown()
    return spec


def outcome(read: Callable[[Any], object], item: Any) -> object:
    try:
        return read(item)
    except ValidationFailed as error:
        return (error.field, error.problem)


def random_item(rng: random.Random) -> Any:
    if rng.random() < 0.05:
        return rng.choice(VALUES)
    item = {"core_id": "CORE_1"} if rng.random() < 0.7 else {}
    for _ in range(rng.randrange(4)):
        item[rng.choice(FIELDS)] = rng.choice(VALUES)
    return item


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0)


@pytest.mark.usefixtures("frozen_clock")
def test_plain_path_agrees_with_the_full_reader_on_random_items() -> None:
    for seed in range(3000):
        item = random_item(random.Random(seed))
        expected = outcome(full_reader, item)
        got = outcome(lambda i: read_task_specs([i])[0], item)
        assert got == expected, (seed, item)


@pytest.mark.usefixtures("frozen_clock")
def test_plain_items_read_like_the_full_reader() -> None:
    item = {
        "core_id": "C:1@x", "priority": -5, "timeout": 30, "metadata": {"a": [1]}, "stay": True,
        "idempotency_key": "k", "max_attempts": 7, "delay": 2,
    }  # fmt: skip
    (spec,) = read_task_specs([item])
    assert spec == full_reader(item)
    assert spec.timeout == 30.0 and type(spec.timeout) is float
    assert spec.not_before == 1_800_000_002.0
    assert read_task_specs([{"core_id": "C", "not_before": 5}])[0].not_before == 5.0
    assert read_task_specs([{"core_id": "C", "priority": None, "stay": None}]) == [TaskSpec(core_id="C")]


def test_metadata_is_the_items_members_in_a_fresh_dict() -> None:
    metadata = {"k": 1}
    (spec,) = read_task_specs([{"core_id": "C", "metadata": metadata}])
    assert spec.metadata == metadata
    assert spec.metadata is not metadata


def test_aliases_and_iso_times_are_still_accepted() -> None:
    specs = read_task_specs(
        [{"coreId": "A", "maxAttempts": 2}, {"core_id": "B", "not_before": "2030-01-01T00:00:00+00:00"}]
    )
    assert [s.core_id for s in specs] == ["A", "B"]
    assert specs[0].max_attempts == 2
    assert specs[1].not_before == 1893456000.0


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([{"core_id": "A"}, {"core_id": "B", "priority": 1000}], "tasks.1.priority"),
        ([{"core_id": "A"}, 3], "tasks.1"),
        ([{"core_id": "A", "prority": 1}], "tasks.0.prority"),
        ([{"core_id": "A"}, {"core_id": "A"}, {"core_id": "a b"}], "tasks.2.core_id"),
        ([{"core_id": "A", "delay": 1, "not_before": 1}], "tasks.0.delay"),
        ([{"core_id": "A", "timeout": 10**400}], "tasks.0.timeout"),
        ([{"core_id": "A", "metadata": {str(i): i for i in range(101)}}], "tasks.0.metadata"),
        ([{"core_id": "A", "not_before": "tomorrow"}], "tasks.0.not_before"),
        ([{"core_id": "A", "not_before": "2030-01-01T00:00:00"}], "tasks.0.not_before"),
    ],
)
def test_errors_name_the_first_bad_item_and_its_field(items: list[Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        read_task_specs(items)
    assert caught.value.field == field


def full_dispatch_reader(data: dict[str, Any], header: str | None) -> tuple[TaskSpec, float]:
    """The reference for a single dispatch: what the route did before the one-pass path."""
    body = JsonObject(data)
    spec = read_task_spec(body, idempotency_key=header)
    wait = body.opt_number("wait", default=DEFAULT_STAY_WAIT, min=0.001, max=MAX_STAY_WAIT)
    body.reject_unknown()
    return spec, wait or DEFAULT_STAY_WAIT


@pytest.mark.usefixtures("frozen_clock")
def test_single_dispatch_agrees_with_the_full_reader_on_random_bodies() -> None:
    for seed in range(3000):
        rng = random.Random(seed)
        item = random_item(rng)
        if not isinstance(item, dict):
            continue
        header = rng.choice([None, None, "k", "A", "x" * 200])
        expected = outcome(functools.partial(full_dispatch_reader, header=header), item)
        got = outcome(lambda i: read_dispatch(JsonObject(i), idempotency_key=header), item)  # noqa: B023
        assert got == expected, (seed, item, header)


def test_single_dispatch_takes_the_header_key_and_a_default_wait() -> None:
    spec, wait = read_dispatch(JsonObject({"core_id": "C"}), idempotency_key="h")
    assert (spec.idempotency_key, wait) == ("h", DEFAULT_STAY_WAIT)
    spec, wait = read_dispatch(
        JsonObject({"core_id": "C", "idempotency_key": "h", "wait": 2}), idempotency_key="h"
    )
    assert (spec.idempotency_key, wait) == ("h", 2.0)
    with pytest.raises(ValidationFailed) as caught:
        read_dispatch(JsonObject({"core_id": "C", "idempotency_key": "b"}), idempotency_key="h")
    assert caught.value.field == "idempotency_key"
