"""Scenario-level checks that need no server: lock exclusion from timestamps, webhook signing."""

from __future__ import annotations

import hashlib
import hmac

from bench.scenarios.locks import check_exclusion
from bench.scenarios.soak import rss_slope
from bench.scenarios.webhooks import sign


def test_sequential_holders_with_increasing_fences_pass() -> None:
    acks = ["r|1|10.0|10.5", "r|2|10.6|11.0", "q|1|10.0|20.0"]
    assert check_exclusion(acks).ok


def test_a_grant_before_the_previous_release_is_an_overlap() -> None:
    check = check_exclusion(["r|1|10.0|10.5", "r|2|10.4|11.0"])
    assert not check.ok and "fence 2 granted before fence 1" in check.detail


def test_a_fence_granted_twice_fails() -> None:
    check = check_exclusion(["r|1|10.0|10.5", "r|1|10.6|11.0"])
    assert not check.ok and "twice" in check.detail


def test_no_grants_at_all_fails() -> None:
    assert not check_exclusion([]).ok


def test_x_signature_is_hmac_of_timestamp_dot_body() -> None:
    header = sign("s3cret", b'{"a":1}', 1700000000)
    expected = hmac.new(b"s3cret", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_rss_slope_sees_growth_only_in_the_second_half() -> None:
    flat_after_warmup = [(float(t), 50.0 + min(t, 30) * 0.5, 0.0) for t in range(120)]
    slope, growth = rss_slope(flat_after_warmup)
    assert abs(slope) < 1e-9 and growth == 0.0
    leaking = [(float(t), 50.0 + t / 60.0, 0.0) for t in range(120)]  # 1 MB per minute
    slope, growth = rss_slope(leaking)
    assert abs(slope - 1.0) < 1e-6 and growth > 0.9
