"""Lockout with fake time: per-account locks that grow, per-client caps, and client pairing."""

from __future__ import annotations

import pytest

from actors.security.lockout import LockoutTracker
from actors.security.settings import LockoutPolicy

POLICY = LockoutPolicy(
    max_failures=5,
    window=900,
    base_lockout=60,
    multiplier=2,
    max_lockout=300,
    ip_max_failures=12,
    ip_window=900,
)


def fail(
    t: LockoutTracker, n: int, *, user: str = "alice", client: str = "1.2.3.4", now: float = 0.0
) -> None:
    for _ in range(n):
        assert not t.check(user, client, now).locked
        t.record_failure(user, client, now)


def test_account_locks_after_max_failures_in_the_window() -> None:
    t = LockoutTracker(POLICY)
    fail(t, 4)
    assert not t.check("alice", "1.2.3.4", 1.0).locked
    triggered = t.record_failure("alice", "1.2.3.4", 1.0)
    assert (triggered.locked, triggered.retry_after) == (True, 60)
    status = t.check("alice", "9.9.9.9", 2.0)  # from anywhere (no pairing yet)
    assert (status.locked, status.scope, status.retry_after) == (True, "account", 59)
    assert not t.check("alice", "9.9.9.9", 61.0).locked


def test_failures_outside_the_window_do_not_count() -> None:
    t = LockoutTracker(POLICY)
    fail(t, 4, now=0.0)
    fail(t, 4, now=901.0)
    assert not t.check("alice", "1.2.3.4", 902.0).locked


def test_lockout_periods_grow_and_are_capped() -> None:
    t = LockoutTracker(POLICY)
    now = 0.0
    periods = []
    for _ in range(5):
        for _ in range(5):
            status = t.record_failure("alice", "ip", now)
        periods.append(status.retry_after)
        now += status.retry_after + 1
    assert periods == [60, 120, 240, 300, 300]


def test_success_resets_failures_and_growth() -> None:
    t = LockoutTracker(POLICY)
    fail(t, 5)
    t.record_success("alice", "1.2.3.4", 61.0)
    fail(t, 4, now=62.0)
    assert t.record_failure("alice", "1.2.3.4", 62.0).retry_after == 60


def test_one_client_cannot_lock_out_many_accounts() -> None:
    t = LockoutTracker(POLICY)
    locked = 0
    for i in range(100):
        user = f"user{i}"
        for _ in range(5):
            if t.check(user, "attacker", 0.0).locked:
                break
            locked += t.record_failure(user, "attacker", 0.0).locked
    assert locked == 2  # 12 failures per window: two full lockouts, then the client itself is refused
    status = t.check("user99", "attacker", 0.0)
    assert (status.locked, status.scope) == (True, "client")
    assert not t.check("user99", "somebody-else", 0.0).locked


def test_client_cap_expires_with_its_window() -> None:
    t = LockoutTracker(POLICY)
    for i in range(12):
        t.record_failure(f"u{i}", "attacker", float(i))
    assert t.check("x", "attacker", 100.0).locked
    assert t.check("x", "attacker", 899.5).scope == "client"
    assert not t.check("x", "attacker", 900.5).locked  # the oldest failure slid out of the window


def test_paired_client_can_still_log_in_while_the_account_is_locked_elsewhere() -> None:
    t = LockoutTracker(POLICY)
    t.record_success("alice", "home", 0.0)
    fail(t, 5, client="attacker", now=10.0)
    assert t.check("alice", "attacker", 11.0).locked
    assert not t.check("alice", "home", 11.0).locked


def test_paired_client_has_its_own_lock() -> None:
    t = LockoutTracker(POLICY)
    t.record_success("alice", "home", 0.0)
    fail(t, 5, client="home", now=1.0)
    assert t.check("alice", "home", 2.0).locked
    assert not t.check("alice", "elsewhere", 2.0).locked


@pytest.mark.parametrize("user", ["alice", "no-such-user"])
def test_unknown_names_lock_exactly_like_known_ones(user: str) -> None:
    t = LockoutTracker(POLICY)
    fail(t, 5, user=user)
    assert t.check(user, "1.2.3.4", 1.0).locked


def test_forget_user_unlocks() -> None:
    t = LockoutTracker(POLICY)
    fail(t, 5)
    t.forget_user("alice")
    assert not t.check("alice", "1.2.3.4", 1.0).locked


def test_memory_is_bounded_by_pruning() -> None:
    t = LockoutTracker(POLICY, max_entries=100)
    for i in range(1000):
        t.record_failure(f"u{i}", f"c{i}", float(i) * 1000)
    assert len(t._accounts) + len(t._clients) <= 102
