"""GCRA with fake time: bursts, steady rate, retry-after, remaining/reset and the IETF headers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.security.ratelimit import GcraLimiter, RatePolicy

TEN_PER_MINUTE = RatePolicy("api", limit=10, window=60.0)


def test_fresh_key_gets_the_full_burst_then_is_refused() -> None:
    lim = GcraLimiter()
    decisions = [lim.take(TEN_PER_MINUTE, "alice", now=100.0) for _ in range(11)]
    assert [d.allowed for d in decisions] == [True] * 10 + [False]
    assert [d.remaining for d in decisions[:10]] == list(range(9, -1, -1))
    refused = decisions[-1]
    assert refused.retry_after == pytest.approx(6.0)  # one emission interval
    assert refused.remaining == 0


def test_quota_replenishes_at_the_sustained_rate() -> None:
    lim = GcraLimiter()
    for _ in range(10):
        lim.take(TEN_PER_MINUTE, "k", now=0.0)
    assert not lim.take(TEN_PER_MINUTE, "k", now=5.9).allowed
    assert lim.take(TEN_PER_MINUTE, "k", now=6.0).allowed
    assert not lim.take(TEN_PER_MINUTE, "k", now=6.0).allowed
    assert lim.take(TEN_PER_MINUTE, "k", now=60.0 + 6.0).remaining == 9


def test_refusals_do_not_consume_quota() -> None:
    lim = GcraLimiter()
    for _ in range(10):
        lim.take(TEN_PER_MINUTE, "k", now=0.0)
    for _ in range(100):
        lim.take(TEN_PER_MINUTE, "k", now=1.0)
    assert lim.take(TEN_PER_MINUTE, "k", now=6.0).allowed


def test_keys_and_policies_are_independent() -> None:
    lim = GcraLimiter()
    other = RatePolicy("auth", limit=1, window=60.0)
    for _ in range(10):
        lim.take(TEN_PER_MINUTE, "a", now=0.0)
    assert lim.take(TEN_PER_MINUTE, "b", now=0.0).allowed
    assert lim.take(other, "a", now=0.0).allowed
    assert not lim.take(other, "a", now=0.0).allowed


def test_burst_smaller_than_limit_smooths_traffic() -> None:
    lim = GcraLimiter()
    policy = RatePolicy("smooth", limit=60, window=60.0, burst=2)
    assert [lim.take(policy, "k", now=0.0).allowed for _ in range(3)] == [True, True, False]
    assert lim.take(policy, "k", now=1.0).allowed


def test_refused_decision_headers_carry_retry_after_and_ratelimit_fields() -> None:
    lim = GcraLimiter()
    for _ in range(10):
        lim.take(TEN_PER_MINUTE, "k", now=0.0)
    headers = dict(lim.take(TEN_PER_MINUTE, "k", now=0.5).headers())
    assert headers["Retry-After"] == "6"
    assert headers["RateLimit-Policy"] == '"api";q=10;w=60'
    assert headers["RateLimit"] == '"api";r=0;t=60'


def test_allowed_decision_headers_have_no_retry_after() -> None:
    headers = dict(GcraLimiter().take(TEN_PER_MINUTE, "k", now=0.0).headers())
    assert "Retry-After" not in headers
    assert headers["RateLimit"] == '"api";r=9;t=6'


def test_memory_stays_bounded_under_key_spraying() -> None:
    lim = GcraLimiter(max_keys=1000)
    for i in range(10_000):
        lim.take(TEN_PER_MINUTE, f"ip-{i}", now=float(i) * 0.001)
    assert len(lim) <= 1000


def test_stale_keys_are_pruned_first() -> None:
    lim = GcraLimiter(max_keys=10)
    for i in range(9):
        lim.take(TEN_PER_MINUTE, f"old-{i}", now=0.0)
    lim.take(TEN_PER_MINUTE, "live", now=0.0)
    for _ in range(5):
        lim.take(TEN_PER_MINUTE, "live", now=0.0)
    lim.take(TEN_PER_MINUTE, "new", now=7.0)  # old-* (one request each) are back to full by now
    # "live" (TAT 36 s) survived the prune: only (60 - 29) / 6 = 5 more fit, not a fresh 10
    assert sum(lim.take(TEN_PER_MINUTE, "live", now=7.0).allowed for _ in range(10)) == 5


def test_peek_does_not_spend() -> None:
    lim = GcraLimiter()
    assert lim.peek(TEN_PER_MINUTE, "k", now=0.0).remaining == 10
    assert lim.peek(TEN_PER_MINUTE, "k", now=0.0).remaining == 10
    assert lim.take(TEN_PER_MINUTE, "k", now=0.0).remaining == 9
    assert lim.peek(TEN_PER_MINUTE, "k", now=0.0).remaining == 9


@pytest.mark.parametrize(("limit", "window"), [(0, 1.0), (1, 0.0), (5, -1.0)])
def test_invalid_policies_are_refused(limit: int, window: float) -> None:
    with pytest.raises(ValueError, match="invalid rate policy"):
        RatePolicy("p", limit=limit, window=window)


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 50),
    window=st.floats(0.5, 100.0),
    gaps=st.lists(st.floats(0.0, 5.0), min_size=1, max_size=300),
)
def test_never_allows_more_than_burst_plus_rate_times_elapsed(
    limit: int, window: float, gaps: list[float]
) -> None:
    policy = RatePolicy("p", limit=limit, window=window)
    lim = GcraLimiter()
    now = 0.0
    allowed = 0
    for gap in gaps:
        now += gap
        allowed += lim.take(policy, "k", now=now).allowed
    assert allowed <= limit + now * limit / window + 1e-6
