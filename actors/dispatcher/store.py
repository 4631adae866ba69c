"""The durable task store the dispatcher actor talks to (`TaskStore`), and the values it returns.

Every write is atomic and durable: it checks the lifecycle table against the stored row, changes the row,
and writes one event per status change (``task.*``, subject = task id, core_id set) in the same
transaction, and returns only after the commit. Client requests arrive as `Command`s, many per `execute`
call. Writes also return the `Change`s they made so the actor can keep its in-memory bookkeeping (queue
depth, due times, throughput) without reading rows back.

Implementations: `SqliteTaskStore` (single node; claims are serialized by the one writer connection). A
PostgreSQL store fills the same protocol: a claim there is
``UPDATE tasks SET ... WHERE seq IN (SELECT seq FROM tasks WHERE status = 'queued' AND core_id = $1 AND
not_before <= $2 ORDER BY rank, seq LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING ...``, so concurrent nodes
never hand out the same task; the other writes are single-row compare-and-set updates on ``lease_token``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from actors.storage import StoredEvent
from runtime import positional_builder

from .messages import (
    ClaimedTask,
    CoreState,
    DispatcherError,
    ReportStatus,
    TaskPage,
    TaskSpec,
    TaskStatus,
    TaskView,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Change:
    """One committed status change. ``not_before``: when a queued task becomes claimable, or when a
    retrying task is due to be queued again."""

    core_id: str
    priority: int
    old: TaskStatus | None
    new: TaskStatus
    not_before: float


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """The value of a write plus the status changes it committed."""

    value: T
    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class Dispatched:
    """One task of a dispatch: the stored task, and whether this dispatch created it."""

    task: TaskView
    created: bool


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """One worker asking for a task under a lease of ``lease_s`` seconds."""

    worker_id: str
    lease_s: float


build_claim_request: Callable[[str, float], ClaimRequest] = positional_builder(ClaimRequest)
"""``ClaimRequest(*fields)`` for a fraction of the cost (one per task a claim asks for)."""


@dataclass(frozen=True, slots=True)
class CoreCounts:
    """Stored figures of one core: counts per status, queued per priority, oldest due queued task."""

    core_id: str
    by_status: Mapping[TaskStatus, int]
    queued_by_priority: Mapping[int, int]
    oldest_due_since: float | None


@dataclass(frozen=True, slots=True)
class Backlog:
    """What the actor rebuilds its bookkeeping from at start-up."""

    queued: Mapping[str, Mapping[int, int]]  # core -> priority -> count
    delayed: Sequence[tuple[str, float]]  # (core, not_before) of queued tasks not yet due
    next_retry_due: float | None


@dataclass(frozen=True, slots=True)
class Isolation:
    """A stored core isolation."""

    core_id: str
    fallback: str | None
    since: float
    reason: str | None


@dataclass(frozen=True, slots=True)
class CoreLoad:
    """Stored figures of one core for its health: queued and held counts, and the oldest and newest last
    sign of life (claim or heartbeat: ``lease_expires_at - lease_s``) among its held tasks."""

    core_id: str
    queued: int
    claimed: int
    running: int
    last_heartbeat_at: float | None
    stalest_heartbeat_at: float | None


@dataclass(frozen=True, slots=True)
class DispatchCmd:
    """Insert tasks (validated by the caller); a known idempotency key yields the existing task.
    Result: ``list[Dispatched]``."""

    specs: Sequence[TaskSpec]
    metadata_json: Sequence[str]  # each spec's metadata, already encoded (and so validated) by the caller


@dataclass(frozen=True, slots=True)
class HeartbeatCmd:
    """Extend the lease of a held task, record progress if given. Result: `HeartbeatAck`."""

    task_id: str
    lease_token: str
    lease_s: float | None
    progress: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class ReportCmd:
    """Apply a holder's report (failures retry with backoff or go dead). Result: `TaskView`."""

    task_id: str
    lease_token: str
    status: ReportStatus
    result: Mapping[str, Any] | None
    error: str | None
    progress: Mapping[str, Any] | None


# The commands built once per heartbeat or report, for a fraction of their frozen constructors' cost.
build_heartbeat_cmd: Callable[[str, str, float | None, Mapping[str, Any] | None], HeartbeatCmd] = (
    positional_builder(HeartbeatCmd)
)
build_report_cmd: Callable[
    [str, str, ReportStatus, Mapping[str, Any] | None, str | None, Mapping[str, Any] | None], ReportCmd
] = positional_builder(ReportCmd)


@dataclass(frozen=True, slots=True)
class SetStatusCmd:
    """Apply a lease-free status change (see `messages.SetStatus`). Result: `TaskView`."""

    task_id: str
    status: TaskStatus
    result: Mapping[str, Any] | None
    error: str | None
    progress: Mapping[str, Any] | None
    principal: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class ReleaseCmd:
    """Hand a held task back without counting the attempt (see `messages.Release`). Result: `TaskView`."""

    task_id: str
    lease_token: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class CancelCmd:
    """Cancel a waiting task, or flag a held one. Result: `TaskView`."""

    task_id: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class RequeueCmd:
    """Move a dead task back to queued. Result: `TaskView`."""

    task_id: str
    reset_attempts: bool


Command = DispatchCmd | HeartbeatCmd | ReportCmd | CancelCmd | RequeueCmd | SetStatusCmd | ReleaseCmd
"""A write request of a client; many run together in one `TaskStore.execute`."""


class TaskStore(Protocol):
    """Durable task state. ``now`` (unix seconds) comes from the caller so that time is testable."""

    async def execute(self, commands: Sequence[Command], now: float) -> list[Outcome[Any] | DispatcherError]:
        """Apply ``commands`` in order, atomically and durably, in one write.

        A command refused with a domain error yields that error in its place and changes nothing; the
        others still apply. (The actor coalesces concurrent client requests into one call.)
        """
        ...

    async def claim(
        self, core_id: str, requests: Sequence[ClaimRequest], now: float, also: Sequence[str] = ()
    ) -> Outcome[list[ClaimedTask]]:
        """Claim up to ``len(requests)`` due tasks of ``core_id``, best rank first, one per request.

        ``also``: cores whose tasks the workers of ``core_id`` take too (isolated cores it is fallback
        for); ranks compare across all of them."""
        ...

    async def release(self, task_id: str, lease_token: str, now: float) -> Outcome[bool]:
        """Undo a claim nobody received (its asker gave up): back to queued, attempt not counted."""
        ...

    async def expire_leases(self, now: float, limit: int) -> Outcome[int]:
        """Re-queue (or kill, or cancel) up to ``limit`` held tasks whose lease lapsed; returns how many."""
        ...

    async def expire_deadlines(self, now: float, limit: int) -> Outcome[int]:
        """Time out up to ``limit`` held tasks past their deadline; returns how many."""
        ...

    async def promote_retries(self, now: float, limit: int) -> Outcome[int]:
        """Queue up to ``limit`` retrying tasks whose backoff elapsed; returns how many."""
        ...

    async def prune_finished(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` tasks finished before ``before``, with their events; returns how many."""
        ...

    async def next_retry_due(self) -> float | None:
        """When the earliest retrying task is due, if any."""
        ...

    async def get(self, task_id: str) -> TaskView:
        """One task, or `TaskNotFound`."""
        ...

    async def list_tasks(
        self, statuses: frozenset[TaskStatus] | None, core_id: str | None, cursor: str | None, limit: int
    ) -> TaskPage:
        """A page of tasks, newest first."""
        ...

    async def events(
        self, task_id: str | None, core_id: str | None, after_seq: int, limit: int
    ) -> list[StoredEvent]:
        """Task events after ``after_seq``, oldest first."""
        ...

    async def counts(self, now: float) -> list[CoreCounts]:
        """Figures of every core with unfinished tasks."""
        ...

    async def backlog(self, now: float) -> Backlog:
        """Queued counts and due times, to rebuild in-memory bookkeeping after a (re)start."""
        ...

    async def isolate_core(
        self, core_id: str, fallback: str | None, reason: str | None, now: float
    ) -> CoreState:
        """Store the isolation (``core.isolated`` event unless nothing changed)."""
        ...

    async def restore_core(self, core_id: str, reason: str | None, now: float) -> CoreState:
        """Drop the isolation (``core.restored`` event unless the core was not isolated)."""
        ...

    async def requeue_core(self, core_id: str, reason: str | None, now: float) -> Outcome[int]:
        """Take back every held task of ``core_id`` as a lease lapse would (``core.requeued`` event)."""
        ...

    async def isolations(self) -> list[Isolation]:
        """Every isolated core."""
        ...

    async def core_loads(self) -> list[CoreLoad]:
        """Figures of every core with queued or held tasks."""
        ...
