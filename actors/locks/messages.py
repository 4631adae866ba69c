"""What the lock manager accepts and answers: messages, replies and domain errors.

Locks are leases: a grant carries a secret ``token`` (the owner's proof for release and extend) and a public
``fence`` (fencing token) that strictly increases per resource and never repeats, also across restarts. A
protected service rejects writes that carry a fence lower than the highest it has seen (Kleppmann).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from runtime import DomainError, Reply


class LockMode(enum.StrEnum):
    """Exclusive (one holder, a writer) or shared (any number of shared holders, readers)."""

    EXCLUSIVE = "exclusive"
    SHARED = "shared"


# --- requests --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Acquire:
    """Take a lease on ``resource`` for ``ttl`` seconds.

    If the resource is held and ``wait`` is true, the reply comes when the lease is granted; the asker's
    own deadline bounds the wait, and an asker that gives up leaves nothing behind. With ``wait`` false a
    held resource answers ``LockUnavailable`` at once. Higher ``priority`` is served first (with aging).
    """

    resource: str
    owner: str
    ttl: float
    reply: Reply[LeaseGrant]
    priority: int = 0
    wait: bool = True
    mode: LockMode = LockMode.EXCLUSIVE


@dataclass(frozen=True, slots=True)
class Release:
    """Give back the lease proven by ``token``; repeating it is harmless, a wrong token is refused."""

    resource: str
    token: str
    reply: Reply[ReleaseResult]


@dataclass(frozen=True, slots=True)
class Extend:
    """Add ``by`` seconds to the lease proven by ``token`` (never shortens it; fails once it expired)."""

    resource: str
    token: str
    by: float
    reply: Reply[ExtendResult]


@dataclass(frozen=True, slots=True)
class GetLock:
    """Who holds ``resource``, with which fence, for how long, and how many wait."""

    resource: str
    reply: Reply[LockInfo]


@dataclass(frozen=True, slots=True)
class ListLocks:
    """Held locks, optionally only those of ``owner`` and/or whose resource starts with ``prefix``."""

    reply: Reply[tuple[LockInfo, ...]]
    owner: str | None = None
    prefix: str | None = None
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class LockStats:
    """Counters since start-up, for metrics."""

    reply: Reply[LockStatistics]


LockMsg = Acquire | Release | Extend | GetLock | ListLocks | LockStats


# --- replies ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """A granted lease. ``token`` is secret (only the owner gets it); ``fence`` is public."""

    resource: str
    owner: str
    token: str
    fence: int
    mode: LockMode
    ttl: float
    waited: float


class ReleaseOutcome(enum.StrEnum):
    """What a release found."""

    RELEASED = "released"
    ALREADY_RELEASED = "already_released"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class ReleaseResult:
    """Answer to ``Release``: the lease is no longer held by this token."""

    resource: str
    outcome: ReleaseOutcome


@dataclass(frozen=True, slots=True)
class ExtendResult:
    """Answer to ``Extend``: the lease's fence and the seconds it has left now."""

    resource: str
    fence: int
    remaining: float


@dataclass(frozen=True, slots=True)
class HolderInfo:
    """One holder of a lock (never its secret token)."""

    owner: str
    fence: int
    mode: LockMode
    remaining: float


@dataclass(frozen=True, slots=True)
class LockInfo:
    """The state of one resource: its holders (empty if free), its queue length and its last fence."""

    resource: str
    holders: tuple[HolderInfo, ...]
    waiters: int
    last_fence: int


@dataclass(frozen=True, slots=True)
class LockStatistics:
    """Counters since start-up. ``wait_buckets`` are cumulative (upper bound in seconds, count)."""

    acquisitions: int
    contended: int
    unavailable: int
    releases: int
    extensions: int
    expiries: int
    refused: int
    abandoned: int
    held: int
    waiting: int
    wait_buckets: tuple[tuple[float, int], ...]
    wait_sum: float
    wait_count: int


# --- domain errors ---------------------------------------------------------------------------------------


class LockError(DomainError):
    """Base of the lock manager's domain errors."""

    def __init__(self, resource: str, message: str) -> None:
        super().__init__(f"{resource!r}: {message}")
        self.resource = resource


class InvalidLockRequest(LockError):
    """The request itself is malformed (empty names, ttl or priority out of range)."""


class LockUnavailable(LockError):
    """The resource is held and the request did not want to wait."""


class LockNotHeld(LockError):
    """The token holds no lease on this resource (and never did, as far as the manager remembers)."""


class NotOwner(LockError):
    """The resource is held by someone else: the release or extend was refused (and recorded)."""


class LockExpired(LockError):
    """The token's lease expired before the request: extending is no longer possible."""
