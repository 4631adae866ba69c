"""Rate limiting per route class and auditing, shared by the actor's hot path, sessions and admin."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import trio

from actors.security.committer import Abort, AuditSampler, Committer
from actors.security.messages import InvalidRequest, RateLimited
from actors.security.ratelimit import GcraLimiter, RateDecision, RatePolicy
from actors.security.settings import SecuritySettings
from actors.security.store import AuditEntry, Change


class Guard:
    """GCRA limits by route class (unknown classes share "default") and the audit entry points."""

    def __init__(self, settings: SecuritySettings, committer: Committer, clock: Callable[[], float]) -> None:
        self._policies = dict(settings.rate_limits)
        self._default = self._policies["default"]
        self._bad_tokens = self._policies.get(
            "invalid_token", RatePolicy("invalid_token", limit=60, window=60.0)
        )
        self._limiter = GcraLimiter(settings.rate_limit_keys)
        self._sampler = AuditSampler()
        self.committer = committer
        self.clock = clock

    @property
    def policies(self) -> Mapping[str, RatePolicy]:
        """The rate-limit policies in force, by route class."""
        return dict(self._policies)

    def set_policies(self, policies: Mapping[str, RatePolicy], *, replace_all: bool) -> None:
        """Install new policies (merged into the current ones unless `replace_all`); 'default' must stay."""
        merged = dict(policies) if replace_all else {**self._policies, **policies}
        if "default" not in merged:
            raise InvalidRequest("rate limits need a 'default' policy")
        self._policies = merged
        self._default = merged["default"]
        self._bad_tokens = merged.get("invalid_token", self._bad_tokens)

    def take(self, route_class: str, key: Hashable, client: str) -> RateDecision:
        """Spend one unit of `key`'s quota for `route_class`; RateLimited (and audited, sampled) if none."""
        policy = self._policies.get(route_class, self._default)
        decision = self._limiter.take(policy, key, trio.current_time())
        if not decision.allowed:
            subject = key[1] if isinstance(key, tuple) and len(key) == 2 else str(key)
            self.sampled("rate_limited", str(subject), client, {"policy": policy.name}, sample_key=key)
            raise RateLimited(decision)
        return decision

    def check_bad_tokens(self, client: str) -> None:
        """Refuse (429) a client that sent too many invalid tokens lately, before spending a verification."""
        decision = self._limiter.peek(self._bad_tokens, ("bad-token", client), trio.current_time())
        if not decision.allowed:
            self.sampled("rate_limited", None, client, {"policy": self._bad_tokens.name}, sample_key=client)
            raise RateLimited(decision)

    def count_bad_token(self, client: str) -> None:
        """Charge one invalid token to `client`."""
        self._limiter.take(self._bad_tokens, ("bad-token", client), trio.current_time())

    def entry(
        self,
        type: str,
        subject: str | None,
        client: str | None,
        data: Mapping[str, Any] | None = None,
        *,
        publish: bool = False,
    ) -> AuditEntry:
        """An audit entry stamped now."""
        return AuditEntry(self.clock(), type, subject, client, dict(data or {}), publish)

    def audit(
        self, type: str, subject: str | None, client: str | None, data: Mapping[str, Any] | None = None
    ) -> None:
        """Record a non-state security event (bounded: dropped and counted under a flood)."""
        self.committer.audit(self.entry(type, subject, client, data))

    def sampled(
        self,
        type: str,
        subject: str | None,
        client: str | None,
        data: Mapping[str, Any],
        *,
        sample_key: Hashable,
    ) -> None:
        """Record a noisy event at most ~10/min per (type, sample_key), with the count suppressed since."""
        suppressed = self._sampler.admit(type, sample_key, trio.current_time())
        if suppressed is not None:
            self.audit(type, subject, client, {**data, "suppressed": suppressed} if suppressed else data)

    def commit(
        self,
        change: Change,
        done: Callable[[], object] | None = None,
        *,
        abort: Abort | None = None,
    ) -> None:
        """Queue a state change for an ordered, batched commit; `done` runs once it is durable (`abort`
        instead if it never will be: see `Committer.submit`)."""
        self.committer.submit(change, done, abort=abort)
