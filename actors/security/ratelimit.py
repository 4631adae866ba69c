"""GCRA rate limiting (a token bucket expressed as one "theoretical arrival time" per key).

Pure and synchronous: the caller passes `now` (a monotonic clock), so tests use fake time and the actor
gets atomicity for free (one message at a time). Decisions carry what the HTTP edge needs for 429,
`Retry-After` and the IETF draft `RateLimit` / `RateLimit-Policy` headers.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """`limit` requests per `window` seconds, of which up to `burst` (default: `limit`) may come at once."""

    name: str
    limit: int
    window: float
    burst: int | None = None

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window <= 0 or (self.burst is not None and self.burst < 1):
            raise ValueError(f"invalid rate policy {self!r}")
        if not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"rate policy name must be a simple token: {self.name!r}")

    @property
    def interval(self) -> float:
        """Seconds between two requests at the sustained rate (GCRA emission interval)."""
        return self.window / self.limit

    @property
    def capacity(self) -> int:
        """How many requests a fresh key may send at once."""
        return self.burst if self.burst is not None else self.limit


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome of one `take`: allowed or not, and the numbers for the response headers."""

    allowed: bool
    policy: RatePolicy
    remaining: int
    reset_after: float  # seconds until the key is back to full capacity
    retry_after: float  # seconds until one request would be allowed (0 when allowed)

    def headers(self) -> list[tuple[str, str]]:
        """`RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers), plus `Retry-After`."""
        name = self.policy.name
        out = [
            ("RateLimit-Policy", f'"{name}";q={self.policy.capacity};w={_seconds(self.policy.window)}'),
            ("RateLimit", f'"{name}";r={self.remaining};t={_seconds(self.reset_after)}'),
        ]
        if not self.allowed:
            out.append(("Retry-After", str(max(1, _seconds(self.retry_after)))))
        return out


def _seconds(value: float) -> int:
    return max(0, math.ceil(value - 1e-9))


class GcraLimiter:
    """Per-key GCRA state for any number of policies; memory is bounded by `max_keys`."""

    __slots__ = ("_max_keys", "_tat")

    def __init__(self, max_keys: int = 200_000) -> None:
        self._tat: dict[tuple[str, Hashable], float] = {}
        self._max_keys = max_keys

    def __len__(self) -> int:
        return len(self._tat)

    def take(self, policy: RatePolicy, key: Hashable, now: float, cost: int = 1) -> RateDecision:
        """Spend `cost` units of `key`'s quota under `policy` if it has them; never partially."""
        slot = (policy.name, key)
        interval = policy.interval
        tolerance = interval * policy.capacity
        tat = self._tat.get(slot, now)
        if tat < now:
            tat = now
        new_tat = tat + interval * cost
        allow_at = new_tat - tolerance
        if allow_at > now + 1e-9:
            return RateDecision(False, policy, 0, tat - now, allow_at - now)
        if slot not in self._tat and len(self._tat) >= self._max_keys:
            self._prune(now)
        self._tat[slot] = new_tat
        remaining = int((tolerance - (new_tat - now)) / interval + 1e-9)
        return RateDecision(True, policy, remaining, new_tat - now, 0.0)

    def peek(self, policy: RatePolicy, key: Hashable, now: float) -> RateDecision:
        """What `take` would answer for one more unit, without spending anything."""
        interval = policy.interval
        tat = max(self._tat.get((policy.name, key), now), now)
        tolerance = interval * policy.capacity
        allow_at = tat + interval - tolerance
        if allow_at > now + 1e-9:
            return RateDecision(False, policy, 0, tat - now, allow_at - now)
        remaining = int((tolerance - (tat - now)) / interval + 1e-9)
        return RateDecision(True, policy, remaining, tat - now, 0.0)

    def reset(self, policy: RatePolicy, key: Hashable) -> None:
        """Forget `key`'s history under `policy` (e.g. after a successful login)."""
        self._tat.pop((policy.name, key), None)

    def _prune(self, now: float) -> None:
        # A key whose TAT is in the past is indistinguishable from a fresh one: dropping it is free.
        self._tat = {k: t for k, t in self._tat.items() if t > now}
        excess = len(self._tat) - int(self._max_keys * 0.9)
        if excess > 0:
            # Still full of live keys: forget the oldest inserted. This fails open for them, which beats
            # unbounded memory under a key-spraying attack.
            for k in list(self._tat)[:excess]:
                del self._tat[k]
