"""Child specifications: what a supervisor starts, how, and when it restarts it."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ._actor import Actor
from ._mailbox import Mailbox
from ._ref import ActorRef, new_ref

M = TypeVar("M")


class Restart(enum.Enum):
    """When a supervisor restarts a child (OTP semantics)."""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only after a crash, not after a normal exit
    TEMPORARY = "temporary"  # never


class Strategy(enum.Enum):
    """Which children a supervisor restarts when one of them exits."""

    ONE_FOR_ONE = "one_for_one"  # just that child
    ONE_FOR_ALL = "one_for_all"  # every child
    REST_FOR_ONE = "rest_for_one"  # that child and the ones started after it


@dataclass(frozen=True, slots=True)
class Intensity:
    """At most ``max_restarts`` restarts within ``within`` seconds; one more and the supervisor gives up."""

    max_restarts: int = 3
    within: float = 5.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0 or self.within <= 0:
            raise ValueError("Intensity needs max_restarts >= 0 and within > 0")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delay: ``min * factor**(n-1)`` capped at ``max`` for the n-th consecutive failure.

    Each delay is shortened by up to ``jitter`` (a fraction) at random, so restarts of many children do
    not align. The count resets once a child has run ``reset_after`` seconds without failing.
    """

    min: float = 0.0
    max: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    reset_after: float = 60.0

    def __post_init__(self) -> None:
        if not (0 <= self.min <= self.max) or self.factor < 1 or not (0 <= self.jitter < 1):
            raise ValueError("Backoff needs 0 <= min <= max, factor >= 1 and 0 <= jitter < 1")

    def delay(self, consecutive_failures: int, random_fraction: float) -> float:
        """The delay before restart number ``consecutive_failures`` (1-based)."""
        if consecutive_failures <= 0 or self.min == 0:
            return 0.0
        base = min(self.max, self.min * self.factor ** (consecutive_failures - 1))
        return base * (1.0 - self.jitter * random_fraction)


@dataclass(frozen=True, slots=True)
class WorkerSpec(Generic[M]):
    """A worker child: an actor with a mailbox the runtime owns. ``ref`` is valid before it starts."""

    id: str
    factory: Callable[[], Actor[M]]
    restart: Restart
    shutdown: float | None
    mailbox: Mailbox[M] = field(repr=False)
    ref: ActorRef[M] = field(repr=False)


@dataclass(frozen=True, slots=True)
class SupervisorSpec:
    """A supervisor child (supervisors nest)."""

    id: str
    children: tuple[ChildSpec, ...]
    strategy: Strategy
    intensity: Intensity
    backoff: Backoff
    restart: Restart
    shutdown: float | None


ChildSpec = WorkerSpec[Any] | SupervisorSpec


def worker(
    id: str,
    factory: Callable[[], Actor[M]],
    *,
    capacity: int = 1000,
    restart: Restart = Restart.PERMANENT,
    shutdown: float | None = 5.0,
) -> WorkerSpec[M]:
    """Describe a worker child. ``shutdown`` is its grace period in seconds (``None``: wait forever)."""
    _check_shutdown(shutdown)
    mailbox: Mailbox[M] = Mailbox(id, capacity)
    return WorkerSpec(id, factory, restart, shutdown, mailbox, new_ref(mailbox))


def supervisor(
    id: str,
    children: Sequence[ChildSpec],
    *,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    intensity: Intensity = Intensity(),
    backoff: Backoff = Backoff(),
    restart: Restart = Restart.PERMANENT,
    shutdown: float | None = None,
) -> SupervisorSpec:
    """Describe a supervisor and its children, in start order. Child ids must be unique in the tree."""
    _check_shutdown(shutdown)
    spec = SupervisorSpec(id, tuple(children), strategy, intensity, backoff, restart, shutdown)
    _check_unique_ids(spec)
    return spec


def _check_shutdown(shutdown: float | None) -> None:
    if shutdown is not None and (shutdown < 0 or math.isnan(shutdown)):
        raise ValueError(f"shutdown grace must be >= 0 seconds or None, got {shutdown!r}")


def _check_unique_ids(spec: SupervisorSpec) -> None:
    seen: set[str] = set()

    def walk(node: ChildSpec) -> None:
        if node.id in seen:
            raise ValueError(f"duplicate child id {node.id!r} in supervisor tree")
        seen.add(node.id)
        if isinstance(node, SupervisorSpec):
            for child in node.children:
                walk(child)

    walk(spec)
