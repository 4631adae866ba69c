"""Recovery governor: cooldown, window budget, Kubernetes-style backoff, escalation and reset."""

from __future__ import annotations

import itertools

from actors.monitor.recovery import Denial, RecoveryGovernor
from actors.monitor.settings import ActionKind, RecoveryPolicy


def _policy(**kw: object) -> RecoveryPolicy:
    return RecoveryPolicy("restart", ActionKind.RESTART_ACTOR, **kw)  # type: ignore[arg-type]


def _attempt_times(gov: RecoveryGovernor, target: str, until: float) -> list[float]:
    times: list[float] = []
    for t in range(int(until)):
        if gov.decide(t, target).allowed:
            gov.record(t, target)
            times.append(t)
    return times


def test_backoff_starts_at_10s_and_doubles_to_five_minutes() -> None:
    gov = RecoveryGovernor(_policy(escalate_after=100, max_per_window=1000))
    times = _attempt_times(gov, "dispatcher", 3000)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[:6] == [10, 20, 40, 80, 160, 300]
    assert set(gaps[6:]) == {300}


def test_escalates_once_after_n_attempts_and_then_stops_acting() -> None:
    gov = RecoveryGovernor(_policy(escalate_after=3))
    times = _attempt_times(gov, "locks", 1000)
    assert times == [0, 10, 30]
    decision = gov.decide(1000, "locks")
    assert decision.denial is Denial.ESCALATED and not decision.escalate  # already said once
    other = RecoveryGovernor(_policy(escalate_after=1))
    other.record(0, "a")
    first, second = other.decide(100, "a"), other.decide(200, "a")
    assert first.escalate and not first.allowed
    assert not second.escalate and second.denial is Denial.ESCALATED


def test_history_resets_after_ten_minutes_healthy_but_not_after_less() -> None:
    gov = RecoveryGovernor(_policy(escalate_after=2))
    gov.record(0, "a")
    gov.record(10, "a")
    assert gov.decide(29, "a").denial is Denial.BACKOFF
    assert gov.decide(30, "a").escalate  # still unhealthy once the last backoff ran out
    gov.note_healthy(30, "a")
    gov.note_unhealthy(30 + 599, "a")  # 9:59 healthy is not enough
    assert gov.decide(700, "a").denial is Denial.ESCALATED
    gov.note_healthy(700, "a")
    gov.note_unhealthy(1300, "a")
    decision = gov.decide(1300, "a")
    assert decision.allowed and decision.attempt == 1


def test_cooldown_is_a_floor_under_the_backoff() -> None:
    gov = RecoveryGovernor(_policy(cooldown_s=60, escalate_after=100, max_per_window=100))
    times = _attempt_times(gov, "x", 400)
    assert times[:4] == [0, 60, 120, 180]


def test_window_budget_is_shared_by_all_targets() -> None:
    gov = RecoveryGovernor(_policy(max_per_window=2, window_s=100))
    gov.record(0, "a")
    gov.record(1, "b")
    decision = gov.decide(2, "c")
    assert decision.denial is Denial.WINDOW and decision.retry_at == 100
    assert gov.decide(100, "c").allowed


def test_backoff_denial_says_when_to_retry() -> None:
    gov = RecoveryGovernor(_policy())
    gov.record(5, "a")
    gov.record(15, "a")
    decision = gov.decide(20, "a")
    assert decision.denial is Denial.BACKOFF and decision.retry_at == 35
