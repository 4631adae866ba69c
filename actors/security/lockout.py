"""Login lockout: per account with growing periods, per client key, and client pairing.

- An account with `max_failures` failures inside `window` is locked for `base_lockout`, then
  `base_lockout * multiplier`, ... up to `max_lockout`; a successful login resets the growth.
- A client key (IP) with `ip_max_failures` failures inside `ip_window`, over any accounts, is refused
  outright: one source cannot cheaply lock out every account (it gets ~ip_max_failures/max_failures).
- Pairing: a client that logged in to an account successfully before is exempt from that account's lock
  (it has its own per-pair counter), so an attacker elsewhere cannot lock the owner out of their usual
  machine. Unknown user names are tracked exactly like known ones, so a lock reveals nothing.
Pure and synchronous; `now` comes from the caller (monotonic seconds).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from actors.security.settings import LockoutPolicy

TRUSTED_PAIR_TTL = 30 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class LockoutStatus:
    """Whether a login attempt may proceed; when not, why ("account" or "client") and for how long."""

    locked: bool
    scope: str = ""
    retry_after: float = 0.0


OPEN = LockoutStatus(False)


@dataclass(slots=True)
class _Counter:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    level: int = 0

    def recent(self, now: float, window: float) -> int:
        while self.failures and self.failures[0] <= now - window:
            self.failures.popleft()
        return len(self.failures)


class LockoutTracker:
    """In-memory lockout state; see the module docstring for the rules."""

    def __init__(self, policy: LockoutPolicy, max_entries: int = 100_000) -> None:
        self._policy = policy
        self._accounts: dict[str, _Counter] = {}
        self._pairs: dict[tuple[str, str], _Counter] = {}
        self._clients: dict[str, deque[float]] = {}
        self._trusted: dict[tuple[str, str], float] = {}
        self._max_entries = max_entries

    def check(self, user: str, client: str, now: float) -> LockoutStatus:
        """May `client` attempt a login to `user` now?"""
        p = self._policy
        failures = self._clients.get(client)
        if failures is not None:
            while failures and failures[0] <= now - p.ip_window:
                failures.popleft()
            if len(failures) >= p.ip_max_failures:
                return LockoutStatus(True, "client", failures[0] + p.ip_window - now)
        if self._is_trusted(user, client, now):
            counter = self._pairs.get((user, client))
        else:
            counter = self._accounts.get(user)
        if counter is not None and counter.locked_until > now:
            return LockoutStatus(True, "account", counter.locked_until - now)
        return OPEN

    def record_failure(self, user: str, client: str, now: float) -> LockoutStatus:
        """Count a failed login; returns the lock it just triggered (locked=True), else OPEN."""
        self._maybe_prune(now)
        p = self._policy
        self._clients.setdefault(client, deque()).append(now)
        if self._is_trusted(user, client, now):
            counter = self._pairs.setdefault((user, client), _Counter())
        else:
            counter = self._accounts.setdefault(user, _Counter())
        counter.failures.append(now)
        if counter.recent(now, p.window) < p.max_failures:
            return OPEN
        period = min(p.base_lockout * p.multiplier**counter.level, p.max_lockout)
        counter.level += 1
        counter.locked_until = now + period
        counter.failures.clear()
        return LockoutStatus(True, "account", period)

    def record_success(self, user: str, client: str, now: float) -> None:
        """A correct password: reset the counters of this account and trust this client for it."""
        self._accounts.pop(user, None)
        self._pairs.pop((user, client), None)
        self._trusted[(user, client)] = now

    def forget_user(self, user: str) -> None:
        """Drop the lock state of `user` (an admin unlocked it or reset its password)."""
        self._accounts.pop(user, None)
        for key in [k for k in self._pairs if k[0] == user]:
            del self._pairs[key]

    def _is_trusted(self, user: str, client: str, now: float) -> bool:
        seen = self._trusted.get((user, client))
        return seen is not None and now - seen < TRUSTED_PAIR_TTL

    def _maybe_prune(self, now: float) -> None:
        size = len(self._accounts) + len(self._pairs) + len(self._clients) + len(self._trusted)
        if size < self._max_entries:
            return
        horizon = now - max(self._policy.window, self._policy.ip_window)
        self._accounts = {k: c for k, c in self._accounts.items() if _alive(c, now, horizon)}
        self._pairs = {k: c for k, c in self._pairs.items() if _alive(c, now, horizon)}
        self._clients = {k: d for k, d in self._clients.items() if d and d[-1] > horizon}
        self._trusted = {k: t for k, t in self._trusted.items() if now - t < TRUSTED_PAIR_TTL}


def _alive(counter: _Counter, now: float, horizon: float) -> bool:
    # Keep escalation levels of recently locked accounts: pruning them would reset the growth.
    return counter.locked_until > now or bool(counter.failures and counter.failures[-1] > horizon)
