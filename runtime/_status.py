"""Immutable snapshots of a supervision tree, and the runtime events it emits."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from ._spec import Restart, Strategy


class ChildState(enum.Enum):
    """Where a child is in its life."""

    STARTING = "starting"
    RUNNING = "running"
    BACKING_OFF = "backing_off"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Failure:
    """What a crash was: exception type, message and when (unix seconds)."""

    type: str
    message: str
    at: float

    @classmethod
    def of(cls, error: BaseException) -> Failure:
        """Describe ``error`` now."""
        return cls(type(error).__name__, str(error), time.time())


@dataclass(frozen=True, slots=True)
class ChildStatus:
    """One child of a supervisor. Mailbox fields are ``None`` for supervisors, ``supervisor`` for workers."""

    id: str
    kind: str  # "worker" | "supervisor"
    state: ChildState
    restart: Restart
    restarts: int
    last_failure: Failure | None
    started_at: float | None
    mailbox_depth: int | None
    mailbox_capacity: int | None
    messages_handled: int | None
    supervisor: SupervisorStatus | None


@dataclass(frozen=True, slots=True)
class SupervisorStatus:
    """A supervisor and its children, in start order."""

    id: str
    strategy: Strategy
    state: ChildState
    children: tuple[ChildStatus, ...]

    def find(self, child_id: str) -> ChildStatus | None:
        """The status of ``child_id`` anywhere below this supervisor."""
        for child in self.children:
            if child.id == child_id:
                return child
            if child.supervisor is not None and (found := child.supervisor.find(child_id)) is not None:
                return found
        return None


@dataclass(frozen=True, slots=True)
class ChildCrashed:
    """A child crashed (or a nested supervisor gave up)."""

    supervisor: str
    child: str
    failure: Failure


@dataclass(frozen=True, slots=True)
class ChildRestarted:
    """A child was started again after ``delay`` seconds.

    ``reason`` is "crash", "exit" (a normal exit of a permanent child), "sibling" or "manual".
    """

    supervisor: str
    child: str
    restarts: int
    delay: float
    reason: str


@dataclass(frozen=True, slots=True)
class SupervisorGaveUp:
    """A supervisor exceeded its restart intensity and escalated to its parent."""

    supervisor: str
    child: str
    failure: Failure | None


RuntimeEvent = ChildCrashed | ChildRestarted | SupervisorGaveUp
