"""The pure rules: lifecycle table, aging rank, backoff, estimates, validation."""

from __future__ import annotations

import collections
import datetime
import itertools
import json
import random

import pytest

from actors.dispatcher.lifecycle import ALLOWED, FINISHED, check_transition
from actors.dispatcher.messages import IllegalTransition, InvalidTask, TaskSpec, TaskStatus
from actors.dispatcher.policy import (
    AgingRule,
    RateMeter,
    RetryPolicy,
    encode_json,
    estimate_start,
    validate_spec,
)

S = TaskStatus


def test_every_status_has_a_row_in_the_transition_table() -> None:
    assert set(ALLOWED) == set(TaskStatus)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.QUEUED, S.RUNNING),
        (S.QUEUED, S.SUCCEEDED),
        (S.SUCCEEDED, S.QUEUED),
        (S.CANCELLED, S.QUEUED),
        (S.DEAD, S.RUNNING),
        (S.RETRYING, S.CLAIMED),
        (S.CLAIMED, S.SUCCEEDED),
    ],
)
def test_illegal_transition_raises(current: TaskStatus, target: TaskStatus) -> None:
    with pytest.raises(IllegalTransition) as info:
        check_transition("t1", current, target)
    assert (info.value.current, info.value.target) == (current, target)


def test_documented_lifecycle_path_is_allowed() -> None:
    path = [S.QUEUED, S.CLAIMED, S.RUNNING, S.FAILED, S.RETRYING, S.QUEUED, S.CLAIMED, S.RUNNING, S.TIMED_OUT]
    for current, target in itertools.pairwise(path):
        check_transition("t1", current, target)
    check_transition("t1", S.TIMED_OUT, S.DEAD)
    check_transition("t1", S.DEAD, S.QUEUED)


def test_finished_statuses_cannot_be_left_except_dead_by_requeue() -> None:
    for status in FINISHED:
        assert ALLOWED[status] <= {S.QUEUED}
    assert ALLOWED[S.DEAD] == {S.QUEUED}


def test_higher_priority_gets_a_smaller_rank_worth_interval_seconds_per_step() -> None:
    rule = AgingRule(interval_s=2.0)
    assert rule.rank(100.0, 5) < rule.rank(100.0, 4)
    assert rule.rank(100.0, 5) == rule.rank(102.0, 6)
    assert rule.overtake_window(priority=0, max_priority=10) == 20.0


def test_backoff_grows_exponentially_with_bounded_jitter_and_cap() -> None:
    policy = RetryPolicy(base_s=1.0, factor=2.0, cap_s=10.0, jitter=0.5)
    rng = random.Random(7)
    for attempt, nominal in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (50, 10.0)]:
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(nominal * 0.5 <= d <= nominal for d in delays)
        assert max(delays) - min(delays) > nominal * 0.3  # jitter really spreads them


def test_rate_meter_counts_over_its_window_only() -> None:
    meter = RateMeter(window_s=10)
    meter.add(100.0, 20)
    meter.add(105.5, 30)
    assert meter.rate(106.0) == 5.0
    assert meter.rate(112.0) == 3.0  # the first bucket slid out
    assert meter.rate(200.0) == 0.0


def test_rate_meter_keeps_the_windows_total_as_buckets_come_and_go() -> None:
    rng = random.Random(3)
    meter = RateMeter(window_s=5)
    events: list[tuple[int, int]] = []
    now = 1000.0
    for _ in range(500):
        now += rng.choice([0.0, 0.3, 1.0, 2.5, 7.0])
        count = rng.randrange(1, 4)
        meter.add(now, count)
        events.append((int(now), count))
        later = now + rng.choice([0.0, 1.0, 4.0, 6.0])
        expected = sum(n for second, n in events if second > int(later) - 5) / 5
        assert meter.rate(later) == expected
        now = later  # the actor's clock never steps back


def test_estimated_start_uses_idle_workers_then_throughput() -> None:
    assert estimate_start(50.0, ahead=2, idle_workers=3, rate_per_s=0.0) == 50.0
    assert estimate_start(50.0, ahead=9, idle_workers=0, rate_per_s=10.0) == 51.0
    assert estimate_start(50.0, ahead=9, idle_workers=0, rate_per_s=0.0) is None


@pytest.mark.parametrize(
    "spec",
    [
        TaskSpec(core_id=""),
        TaskSpec(core_id="c", priority=101),
        TaskSpec(core_id="c", max_attempts=0),
        TaskSpec(core_id="c", timeout=0.0),
        TaskSpec(core_id="c", timeout=float("nan")),
        TaskSpec(core_id="c", not_before=float("inf")),
        TaskSpec(core_id="c", idempotency_key=""),
    ],
)
def test_out_of_range_specs_are_rejected(spec: TaskSpec) -> None:
    with pytest.raises(InvalidTask):
        validate_spec(spec)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_metadata_with_nan_or_infinity_is_refused(bad: float) -> None:
    with pytest.raises(InvalidTask, match="metadata is not valid JSON"):
        validate_spec(TaskSpec(core_id="c", metadata={"a": [1, {"b": bad}]}))


@pytest.mark.parametrize(
    "metadata",
    [
        {"a": 1, "b": [True, None, 1.5, "x"], "c": {"d": "é ☃"}},
        {"big": 2**70, "null_text": "null"},
        {"n": None},
    ],
)
def test_metadata_is_encoded_as_the_same_json_value(metadata: dict[str, object]) -> None:
    assert json.loads(validate_spec(TaskSpec(core_id="c", metadata=metadata))) == metadata


def test_metadata_the_stdlib_refused_is_still_refused() -> None:
    with pytest.raises(InvalidTask):
        validate_spec(TaskSpec(core_id="c", metadata={"at": datetime.datetime(2026, 1, 1)}))
    with pytest.raises(InvalidTask):
        validate_spec(TaskSpec(core_id="c", metadata={"s": {1, 2}}))


def test_metadata_may_be_a_dict_subclass_but_no_other_type() -> None:
    assert json.loads(encode_json(collections.OrderedDict(a=1), "metadata")) == {"a": 1}
    for bad in ([("a", 1)], "{}", None):
        with pytest.raises(InvalidTask, match="metadata must be a JSON object"):
            encode_json(bad, "metadata")  # type: ignore[arg-type]
