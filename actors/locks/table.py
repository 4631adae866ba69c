"""The lock table: leases, fencing tokens, wait queues and expiry, in memory. Pure: no Trio, no SQL.

Every method takes ``now`` (seconds on the caller's monotonic clock) and first expires the leases whose
deadline is ``<= now``, granting the next waiters at ``now``. State changes are collected as ``Change``
records in an outbox that the caller drains (``drain``) and persists with their events in one transaction.

Guarantees, per resource: an exclusive lease is never held together with any other lease; shared leases
coexist; every grant gets a fence one higher than the previous grant's (the counter outlives the lease, and
``restore`` reloads it, so fences never repeat); the queue is served in ``waitqueue`` order, and a waiter
later in the order is never granted while an earlier one is still blocked (no barging, so no starvation).
"""

from __future__ import annotations

import heapq
import math
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

from .messages import (
    InvalidLockRequest,
    LockExpired,
    LockMode,
    LockNotHeld,
    LockUnavailable,
    NotOwner,
    ReleaseOutcome,
)
from .stats import TableCounters
from .waitqueue import MAX_PRIORITY, MIN_PRIORITY, Waiter, WaitQueue

MAX_NAME_LENGTH = 512


@dataclass(frozen=True, slots=True)
class Lease:
    """A granted lease. ``token`` is the owner's secret; ``fence`` the public fencing token."""

    resource: str
    owner: str
    token: str
    fence: int
    mode: LockMode
    priority: int
    acquired_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Granted:
    """A lease was granted (``waiter_id`` is the queue entry it came from)."""

    lease: Lease
    waiter_id: int
    waited: float


@dataclass(frozen=True, slots=True)
class Released:
    """A lease was released by its owner (``abandoned``: its asker had gone before the grant reached it)."""

    lease: Lease
    abandoned: bool


@dataclass(frozen=True, slots=True)
class Extended:
    """A lease got a later deadline."""

    lease: Lease


@dataclass(frozen=True, slots=True)
class Expired:
    """A lease passed its deadline and was taken back."""

    lease: Lease


@dataclass(frozen=True, slots=True)
class Refused:
    """Someone tried to release or extend a lease held by others with a token that is not theirs."""

    resource: str
    action: str
    holder_fences: tuple[int, ...]


Change = Granted | Released | Extended | Expired | Refused


def _new_token() -> str:
    return secrets.token_urlsafe(18)


class LockTable:
    """All locks of one node. See the module docstring for the guarantees."""

    def __init__(
        self,
        *,
        aging: float = 1.0,
        max_ttl: float = 86_400.0,
        token_factory: Callable[[], str] = _new_token,
        remember_ended: int = 100_000,
    ) -> None:
        self.aging = aging
        self.max_ttl = max_ttl
        self.counters = TableCounters()
        self._new_token = token_factory
        self._remember_ended = remember_ended
        self._held: dict[str, dict[str, Lease]] = {}
        self._by_token: dict[str, Lease] = {}
        self._queues: dict[str, WaitQueue] = {}
        self._waiters: dict[int, Waiter] = {}
        self._fences: dict[str, int] = {}
        self._deadlines: list[tuple[float, str]] = []
        # Tokens of leases that ended recently, so a repeated release is answered truthfully.
        self._ended: OrderedDict[str, tuple[str, ReleaseOutcome]] = OrderedDict()
        self._next_waiter = 1
        self._outbox: list[Change] = []

    # --- loading and draining -------------------------------------------------------------------------
    def restore(self, leases: Iterable[Lease], fences: Mapping[str, int]) -> None:
        """Load persisted state into an empty table (expired leases go at the next call with ``now``)."""
        self._fences.update(fences)
        for lease in leases:
            self._fences[lease.resource] = max(self._fences.get(lease.resource, 0), lease.fence)
            self._add(lease)

    def drain(self) -> list[Change]:
        """Take the changes made since the last drain, in order."""
        out, self._outbox = self._outbox, []
        return out

    # --- operations -----------------------------------------------------------------------------------
    def acquire(
        self,
        resource: str,
        owner: str,
        ttl: float,
        now: float,
        *,
        priority: int = 0,
        wait: bool = True,
        mode: LockMode = LockMode.EXCLUSIVE,
    ) -> Lease | Waiter:
        """Grant a lease now, or queue a waiter (``wait``), or raise ``LockUnavailable``."""
        self._validate(resource, owner, ttl, priority)
        self.expire_due(now)
        waiter = Waiter(self._next_waiter, resource, owner, mode, ttl, priority, now)
        self._next_waiter += 1
        if resource not in self._queues and self._compatible(resource, mode):
            return self._grant(waiter, now).lease  # fast path: nobody waits, so nobody is overtaken
        self._waiters[waiter.id] = waiter
        self._queue(resource).push(waiter)
        for granted in self._grant_ready(resource, now):
            if granted.waiter_id == waiter.id:
                return granted.lease
        self.counters.contended += 1
        if not wait:
            self._unqueue(waiter, now)
            self.counters.unavailable += 1
            raise LockUnavailable(resource, "held by another owner")
        return waiter

    def release(self, resource: str, token: str, now: float, *, abandoned: bool = False) -> ReleaseOutcome:
        """Release the lease of ``token``; repeats answer what happened; others' tokens raise ``NotOwner``."""
        self.expire_due(now)
        lease = self._by_token.get(token)
        if lease is not None and lease.resource == resource:
            self._remove(lease, ReleaseOutcome.ALREADY_RELEASED)
            self._outbox.append(Released(lease, abandoned))
            self.counters.releases += 1
            self._grant_ready(resource, now)
            return ReleaseOutcome.RELEASED
        ended = self._ended.get(token)
        if ended is not None and ended[0] == resource:
            return ended[1]
        raise self._refuse(resource, "release")

    def extend(self, resource: str, token: str, by: float, now: float) -> Lease:
        """Move the lease's deadline ``by`` seconds later (capped at ``now + max_ttl``, never earlier)."""
        if not (math.isfinite(by) and by > 0):
            raise InvalidLockRequest(resource, f"extend by must be a positive number of seconds, got {by!r}")
        self.expire_due(now)
        lease = self._by_token.get(token)
        if lease is not None and lease.resource == resource:
            expires_at = max(lease.expires_at, min(lease.expires_at + by, now + self.max_ttl))
            lease = replace(lease, expires_at=expires_at)
            self._held[resource][token] = self._by_token[token] = lease
            heapq.heappush(self._deadlines, (expires_at, token))
            self._outbox.append(Extended(lease))
            self.counters.extensions += 1
            return lease
        ended = self._ended.get(token)
        if ended is not None and ended[0] == resource:
            if ended[1] is ReleaseOutcome.EXPIRED:
                raise LockExpired(resource, "the lease expired before it was extended")
            raise LockNotHeld(resource, "the lease was released")
        raise self._refuse(resource, "extend")

    def cancel(self, waiter_id: int, now: float) -> bool:
        """Drop a waiter whose asker gave up; False if it is no longer queued (granted or gone)."""
        waiter = self._waiters.get(waiter_id)
        if waiter is None:
            return False
        self.expire_due(now)
        if waiter_id not in self._waiters:  # the expiry just granted it
            return False
        self._unqueue(waiter, now)
        self.counters.abandoned += 1
        return True

    def expire_due(self, now: float) -> None:
        """Take back every lease whose deadline is ``<= now`` and grant the next waiters."""
        touched: dict[str, None] = {}
        while self._deadlines and self._deadlines[0][0] <= now:
            expires_at, token = heapq.heappop(self._deadlines)
            lease = self._by_token.get(token)
            if lease is None or lease.expires_at != expires_at:
                continue  # released or extended since
            self._remove(lease, ReleaseOutcome.EXPIRED)
            self._outbox.append(Expired(lease))
            self.counters.expiries += 1
            touched[lease.resource] = None
        for resource in touched:
            self._grant_ready(resource, now)

    # --- inspection -----------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """The earliest lease deadline, or ``None`` if nothing is held."""
        while self._deadlines:
            expires_at, token = self._deadlines[0]
            lease = self._by_token.get(token)
            if lease is not None and lease.expires_at == expires_at:
                return expires_at
            heapq.heappop(self._deadlines)
        return None

    def holders(self, resource: str) -> tuple[Lease, ...]:
        """The current leases on ``resource`` (empty if free)."""
        return tuple(self._held.get(resource, {}).values())

    def lease(self, token: str) -> Lease | None:
        """The live lease of ``token``, if any."""
        return self._by_token.get(token)

    def waiters(self, resource: str) -> tuple[Waiter, ...]:
        """The waiters of ``resource`` in the order they will be served."""
        queue = self._queues.get(resource)
        return tuple(queue) if queue is not None else ()

    def waiter_count(self, resource: str | None = None) -> int:
        """Waiters of one resource, or of all."""
        if resource is None:
            return len(self._waiters)
        queue = self._queues.get(resource)
        return len(queue) if queue is not None else 0

    def is_waiting(self, waiter_id: int) -> bool:
        """Whether the waiter is still queued."""
        return waiter_id in self._waiters

    def last_fence(self, resource: str) -> int:
        """The fence of the last grant on ``resource`` (0 if never granted)."""
        return self._fences.get(resource, 0)

    def held_resources(self) -> Iterator[str]:
        """Resources that have at least one holder."""
        return iter(self._held)

    def lease_count(self) -> int:
        """How many leases are held in all."""
        return len(self._by_token)

    # --- internals ------------------------------------------------------------------------------------
    def _validate(self, resource: str, owner: str, ttl: float, priority: int) -> None:
        if not resource or len(resource) > MAX_NAME_LENGTH:
            raise InvalidLockRequest(resource, f"resource must be 1..{MAX_NAME_LENGTH} characters")
        if not owner or len(owner) > MAX_NAME_LENGTH:
            raise InvalidLockRequest(resource, f"owner must be 1..{MAX_NAME_LENGTH} characters")
        if not (math.isfinite(ttl) and 0 < ttl <= self.max_ttl):
            raise InvalidLockRequest(resource, f"ttl must be in (0, {self.max_ttl}] seconds, got {ttl!r}")
        if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            raise InvalidLockRequest(resource, f"priority must be in [{MIN_PRIORITY}, {MAX_PRIORITY}]")

    def _queue(self, resource: str) -> WaitQueue:
        queue = self._queues.get(resource)
        if queue is None:
            queue = self._queues[resource] = WaitQueue(self.aging)
        return queue

    def _grant_ready(self, resource: str, now: float) -> list[Granted]:
        """Grant from the head of the queue while the head is compatible with the holders."""
        queue = self._queues.get(resource)
        grants: list[Granted] = []
        while queue and (head := queue.peek()) is not None and self._compatible(resource, head.mode):
            queue.pop()
            del self._waiters[head.id]
            grants.append(self._grant(head, now))
        if queue is not None and not queue:
            del self._queues[resource]
        return grants

    def _grant(self, waiter: Waiter, now: float) -> Granted:
        resource = waiter.resource
        fence = self._fences[resource] = self._fences.get(resource, 0) + 1
        lease = Lease(
            resource,
            waiter.owner,
            self._new_token(),
            fence,
            waiter.mode,
            waiter.priority,
            now,
            now + waiter.ttl,
        )
        self._add(lease)
        grant = Granted(lease, waiter.id, now - waiter.enqueued_at)
        self._outbox.append(grant)
        self.counters.acquisitions += 1
        self.counters.observe_wait(grant.waited)
        return grant

    def _compatible(self, resource: str, mode: LockMode) -> bool:
        held = self._held.get(resource)
        if not held:
            return True
        if mode is LockMode.EXCLUSIVE:
            return False
        return next(iter(held.values())).mode is LockMode.SHARED

    def _unqueue(self, waiter: Waiter, now: float) -> None:
        del self._waiters[waiter.id]
        queue = self._queues[waiter.resource]
        queue.remove(waiter.id)
        # The waiter may have been the head that blocked compatible waiters behind it.
        self._grant_ready(waiter.resource, now)
        if not queue:
            self._queues.pop(waiter.resource, None)

    def _add(self, lease: Lease) -> None:
        self._held.setdefault(lease.resource, {})[lease.token] = lease
        self._by_token[lease.token] = lease
        heapq.heappush(self._deadlines, (lease.expires_at, lease.token))
        if len(self._deadlines) > 2 * len(self._by_token) + 64:
            self._deadlines = [(live.expires_at, t) for t, live in self._by_token.items()]
            heapq.heapify(self._deadlines)

    def _remove(self, lease: Lease, outcome: ReleaseOutcome) -> None:
        held = self._held[lease.resource]
        del held[lease.token]
        if not held:
            del self._held[lease.resource]
        del self._by_token[lease.token]
        self._ended[lease.token] = (lease.resource, outcome)
        if len(self._ended) > self._remember_ended:
            self._ended.popitem(last=False)

    def _refuse(self, resource: str, action: str) -> LockNotHeld | NotOwner:
        holders = self.holders(resource)
        if not holders:
            return LockNotHeld(resource, "no lease is held with this token")
        self._outbox.append(Refused(resource, action, tuple(h.fence for h in holders)))
        self.counters.refused += 1
        return NotOwner(resource, f"{action} refused: the lock is held by another owner")
