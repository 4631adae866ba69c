"""Runtime changes of the rate-limit policies (SetRateLimits / GetRateLimits)."""

from __future__ import annotations

import json

import pytest

from actors.security.messages import (
    GetRateLimits,
    InvalidRequest,
    ListAudit,
    RateLimited,
    RatePolicy,
    SetRateLimits,
    Throttle,
)

from .conftest import OpenSecurity


async def test_tightened_policy_applies_to_the_next_request(open_security: OpenSecurity) -> None:
    async with open_security() as ref:
        new = {"tight": RatePolicy("tight", limit=1, window=60.0)}
        in_force = await ref.ask(lambda r: SetRateLimits(new, "admin", r))
        assert in_force["tight"].limit == 1 and in_force["default"].limit == 1000
        await ref.ask(lambda r: Throttle("tight", "9.9.9.9", r))
        with pytest.raises(RateLimited):
            await ref.ask(lambda r: Throttle("tight", "9.9.9.9", r))
        assert (await ref.ask(GetRateLimits))["tight"].limit == 1


async def test_loosened_policy_lets_a_throttled_client_through(open_security: OpenSecurity) -> None:
    async with open_security() as ref:
        for _ in range(3):
            await ref.ask(lambda r: Throttle("tight", "1.1.1.1", r))
        with pytest.raises(RateLimited):
            await ref.ask(lambda r: Throttle("tight", "1.1.1.1", r))
        loose = {"tight": RatePolicy("tight", limit=1_000_000, window=60.0)}
        await ref.ask(lambda r: SetRateLimits(loose, "admin", r))
        await ref.ask(lambda r: Throttle("tight", "1.1.1.1", r))


async def test_a_change_that_drops_default_is_refused_and_changes_nothing(
    open_security: OpenSecurity,
) -> None:
    async with open_security() as ref:
        only = {"tight": RatePolicy("tight", limit=1, window=60.0)}
        with pytest.raises(InvalidRequest):
            await ref.ask(lambda r: SetRateLimits(only, "admin", r, replace_all=True))
        assert set(await ref.ask(GetRateLimits)) == {"default", "auth", "tight"}
        replaced = {**only, "default": RatePolicy("default", limit=5, window=1.0)}
        assert set(await ref.ask(lambda r: SetRateLimits(replaced, "admin", r, replace_all=True))) == {
            "default",
            "tight",
        }


async def test_a_change_is_audited_with_who_and_the_new_limits(open_security: OpenSecurity) -> None:
    async with open_security() as ref:
        new = {"tight": RatePolicy("tight", limit=7, window=30.0, burst=2)}
        await ref.ask(lambda r: SetRateLimits(new, "alice", r))
        rows = await ref.ask(lambda r: ListAudit(r, subject="alice"))
    changed = [row for row in rows if row.type == "rate_limits_changed"]
    assert len(changed) == 1
    data = changed[0].data
    assert (json.loads(data) if isinstance(data, str) else data)["tight"] == "7/30/2"
