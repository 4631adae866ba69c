"""Targeted behaviours of the pure lock table (fake time: plain floats)."""

from __future__ import annotations

import pytest

from actors.locks.messages import (
    InvalidLockRequest,
    LockExpired,
    LockMode,
    LockNotHeld,
    LockUnavailable,
    NotOwner,
    ReleaseOutcome,
)
from actors.locks.table import Expired, Granted, Lease, LockTable, Refused, Released
from actors.locks.waitqueue import MAX_PRIORITY, Waiter


def granted(result: Lease | Waiter) -> Lease:
    assert isinstance(result, Lease), f"expected a grant, got {result}"
    return result


def queued(result: Lease | Waiter) -> Waiter:
    assert isinstance(result, Waiter), f"expected to wait, got {result}"
    return result


def grants(table: LockTable) -> list[Granted]:
    return [c for c in table.drain() if isinstance(c, Granted)]


def test_fences_increase_per_resource_and_continue_after_restore() -> None:
    table = LockTable()
    a1 = granted(table.acquire("a", "w1", 10, 0.0))
    table.release("a", a1.token, 1.0)
    a2 = granted(table.acquire("a", "w1", 10, 2.0))
    b1 = granted(table.acquire("b", "w1", 10, 2.0))
    assert (a1.fence, a2.fence, b1.fence) == (1, 2, 1)

    restored = LockTable()
    restored.restore([a2], {"a": 2, "b": 1, "c": 7})
    table.release("b", b1.token, 3.0)
    assert granted(restored.acquire("b", "w2", 10, 3.0)).fence == 2
    assert granted(restored.acquire("c", "w2", 10, 3.0)).fence == 8
    assert restored.release("a", a2.token, 3.0) is ReleaseOutcome.RELEASED


def test_higher_priority_first_then_fifo() -> None:
    table = LockTable(aging=1.0)
    holder = granted(table.acquire("r", "h", 10, 0.0))
    low = queued(table.acquire("r", "low", 10, 0.0, priority=0))
    first_high = queued(table.acquire("r", "high1", 10, 0.0, priority=5))
    second_high = queued(table.acquire("r", "high2", 10, 0.0, priority=5))
    assert [w.id for w in table.waiters("r")] == [first_high.id, second_high.id, low.id]
    table.drain()
    table.release("r", holder.token, 1.0)
    assert [g.waiter_id for g in grants(table)] == [first_high.id]


def test_wait_false_on_a_held_resource_leaves_no_waiter() -> None:
    table = LockTable()
    granted(table.acquire("r", "w1", 10, 0.0))
    with pytest.raises(LockUnavailable):
        table.acquire("r", "w2", 10, 0.0, wait=False)
    assert table.waiter_count() == 0
    assert table.counters.unavailable == 1


def test_cancelling_the_blocking_head_grants_compatible_waiters_behind_it() -> None:
    table = LockTable()
    granted(table.acquire("r", "reader", 10, 0.0, mode=LockMode.SHARED))
    writer = queued(table.acquire("r", "writer", 10, 1.0))
    reader2 = queued(table.acquire("r", "reader2", 10, 2.0, mode=LockMode.SHARED))
    table.drain()
    assert table.cancel(writer.id, 3.0) is True
    assert [g.waiter_id for g in grants(table)] == [reader2.id]
    assert table.cancel(writer.id, 3.0) is False
    assert table.waiter_count() == 0


def test_shared_request_does_not_barge_past_a_queued_writer() -> None:
    table = LockTable()
    reader = granted(table.acquire("r", "reader", 10, 0.0, mode=LockMode.SHARED))
    writer = queued(table.acquire("r", "writer", 10, 1.0))
    queued(table.acquire("r", "reader2", 10, 2.0, mode=LockMode.SHARED))
    table.drain()
    table.release("r", reader.token, 3.0)
    assert [g.waiter_id for g in grants(table)] == [writer.id]


def test_extend_adds_time_never_shortens_and_is_capped() -> None:
    table = LockTable(max_ttl=100)
    lease = granted(table.acquire("r", "w", 50, 0.0))
    assert table.extend("r", lease.token, 10, 5.0).expires_at == 60
    assert table.extend("r", lease.token, 80, 6.0).expires_at == 106  # capped at now + max_ttl
    assert table.extend("r", lease.token, 1, 6.0).expires_at == 106  # the cap never shortens


def test_extend_after_expiry_fails_even_when_another_owner_holds_it() -> None:
    table = LockTable()
    old = granted(table.acquire("r", "w1", 5, 0.0))
    queued(table.acquire("r", "w2", 5, 1.0))
    table.drain()
    with pytest.raises(LockExpired):
        table.extend("r", old.token, 10, 5.0)
    changes = table.drain()
    assert [type(c) for c in changes] == [Expired, Granted]
    assert table.release("r", old.token, 6.0) is ReleaseOutcome.EXPIRED


def test_release_is_idempotent_for_its_owner_and_refused_for_anyone_else() -> None:
    table = LockTable()
    first = granted(table.acquire("r", "w1", 10, 0.0))
    assert table.release("r", first.token, 1.0) is ReleaseOutcome.RELEASED
    assert table.release("r", first.token, 1.0) is ReleaseOutcome.ALREADY_RELEASED
    second = granted(table.acquire("r", "w2", 10, 2.0))
    table.drain()
    assert table.release("r", first.token, 3.0) is ReleaseOutcome.ALREADY_RELEASED
    with pytest.raises(NotOwner):
        table.release("r", "forged-token", 3.0)
    with pytest.raises(NotOwner):
        table.extend("r", "forged-token", 5, 3.0)
    assert [c for c in table.drain() if isinstance(c, Refused)] == [
        Refused("r", "release", (second.fence,)),
        Refused("r", "extend", (second.fence,)),
    ]
    assert table.holders("r") == (second,)
    with pytest.raises(LockNotHeld):
        table.release("free", "forged-token", 3.0)


def test_expiry_grants_the_next_waiter_at_the_deadline() -> None:
    table = LockTable()
    holder = granted(table.acquire("r", "w1", 5, 0.0))
    waiter = queued(table.acquire("r", "w2", 5, 1.0))
    table.drain()
    assert table.next_deadline() == 5.0
    table.expire_due(4.999)
    assert table.drain() == []
    table.expire_due(5.0)
    expired, grant = table.drain()
    assert expired == Expired(holder)
    assert isinstance(grant, Granted)
    assert (grant.waiter_id, grant.lease.fence, grant.waited) == (waiter.id, 2, 4.0)
    assert table.counters.expiries == 1


def test_release_makes_its_old_deadline_stale() -> None:
    table = LockTable()
    lease = granted(table.acquire("r", "w1", 5, 0.0))
    table.release("r", lease.token, 1.0)
    assert table.next_deadline() is None
    assert [type(c) for c in table.drain()] == [Granted, Released]


@pytest.mark.parametrize(
    ("ttl", "priority", "owner"),
    [(0, 0, "w"), (-1, 0, "w"), (float("nan"), 0, "w"), (1, 101, "w"), (1, 0, "")],
)
def test_malformed_requests_are_rejected(ttl: float, priority: int, owner: str) -> None:
    with pytest.raises(InvalidLockRequest):
        LockTable().acquire("r", owner, ttl, 0.0, priority=priority)


def _starve(aging: float, horizon: float) -> tuple[float | None, int]:
    """A priority-0 waiter against a high-priority request every 0.5 s, each lease held 1 s.

    Returns when the low waiter was granted (or None) and how many high requests were served before it.
    """
    high = 10
    table = LockTable(aging=aging)
    holder = granted(table.acquire("gpu", "first", 60, 0.0, priority=high))
    low = queued(table.acquire("gpu", "low", 60, 0.25, priority=0))
    table.drain()
    served_before = 0
    now = 0.0
    while now < horizon:
        now += 0.5
        table.acquire("gpu", f"high@{now}", 60, now, priority=high)
        if now == int(now):  # each holder keeps the lease for one second
            table.release("gpu", holder.token, now)
            (grant,) = grants(table)
            if grant.waiter_id == low.id:
                return now, served_before
            holder = grant.lease
            served_before += 1
    return None, served_before


def test_low_priority_waiter_is_granted_within_the_aging_bound() -> None:
    # Bound (waitqueue docstring): no request enqueued after t0 + (10 - 0) * aging overtakes the waiter.
    # With 0 ahead at t0, 2 arrivals/s and leases of 1 s: wait <= (0 + 2 * 10 * 1.0 + 1) * 1 s = 21 s.
    aging = 1.0
    granted_at, served_before = _starve(aging, horizon=200)
    assert granted_at is not None
    assert granted_at - 0.25 <= (2 * (high_window := 10 * aging) + 1) * 1.0
    assert served_before <= 2 * high_window


def test_with_strict_priority_the_low_priority_waiter_starves() -> None:
    # The control for the test above: a priority step worth 10^6 s of waiting is strict priority, and the
    # same stream never serves the waiter.
    granted_at, served_before = _starve(aging=1e6, horizon=200)
    assert granted_at is None
    assert served_before == 200


def test_priorities_are_capped_so_the_bound_is_finite() -> None:
    with pytest.raises(InvalidLockRequest):
        LockTable().acquire("r", "w", 1, 0.0, priority=MAX_PRIORITY + 1)
