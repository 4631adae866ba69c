"""What the dispatcher accepts and answers: messages, reply values and domain errors.

Lifecycle of a task (see ``lifecycle.py`` for the enforced table)::

    queued -> claimed (lease) -> running -> succeeded | failed | timed_out | cancelled
    failed | timed_out -> retrying (backoff) -> queued, or -> dead after max_attempts
    dead -> queued (operator requeue)

Cores can be isolated (taken out of rotation, persisted): claims for an isolated core get nothing; with a
fallback core, the fallback's workers claim the isolated core's tasks too (see ``IsolateCore``).

Times are unix seconds (UTC). A request answered with a value is acknowledged only after its change and
its events are committed. Domain errors map to HTTP at the edge: ``TaskNotFound`` 404,
``IllegalTransition`` 409, ``StaleLease`` 409, ``InvalidTask`` 422.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.storage import StoredEvent
from runtime import DomainError, Reply, positional_builder

PRIORITY_MIN = -100
PRIORITY_MAX = 100


class TaskStatus(enum.StrEnum):
    """Where a task is in its lifecycle."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    RETRYING = "retrying"
    DEAD = "dead"


class ReportStatus(enum.StrEnum):
    """What a worker may report about a task it holds (``progress`` keeps it running)."""

    RUNNING = "running"
    PROGRESS = "progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


SETTABLE_STATUSES: frozenset[TaskStatus] = frozenset(
    {
        TaskStatus.QUEUED,
        TaskStatus.RUNNING,
        TaskStatus.SUCCEEDED,
        TaskStatus.FAILED,
        TaskStatus.TIMED_OUT,
        TaskStatus.CANCELLED,
        TaskStatus.DEAD,
    }
)
"""The statuses a `SetStatus` may ask for (claimed and retrying are orch's own doing)."""


# --- errors ----------------------------------------------------------------------------------------------


class DispatcherError(DomainError):
    """Base of the dispatcher's domain errors."""


class TaskNotFound(DispatcherError):
    """No task has this id (never existed, or pruned by retention)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id!r} not found")
        self.task_id = task_id


class IllegalTransition(DispatcherError):
    """The task's current status does not allow the requested change."""

    def __init__(self, task_id: str, current: TaskStatus, target: TaskStatus) -> None:
        super().__init__(f"task {task_id!r} cannot go from {current} to {target}")
        self.task_id = task_id
        self.current = current
        self.target = target


class StaleLease(DispatcherError):
    """The lease token is not the task's current one: the caller lost the task (expired, timed out, ...)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"lease token for task {task_id!r} is stale")
        self.task_id = task_id


class InvalidTask(DispatcherError):
    """A request field is out of range (priority, max_attempts, timeout, lease...)."""


# --- reply values ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task as stored. ``attempts`` counts claims; ``deadline_at`` = claim time + timeout."""

    id: str
    core_id: str
    priority: int
    status: TaskStatus
    attempts: int
    max_attempts: int
    timeout_s: float | None
    metadata: Mapping[str, Any]
    stay: bool
    idempotency_key: str | None
    not_before: float
    claimed_by: str | None
    lease_expires_at: float | None
    deadline_at: float | None
    cancel_requested: bool
    progress: Mapping[str, Any] | None
    result: Mapping[str, Any] | None
    error: str | None
    created_at: float
    updated_at: float
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class DispatchAccepted:
    """A durable dispatch. ``created`` is false when the idempotency key matched an existing task.

    ``estimated_start`` (unix seconds) comes from the tasks queued ahead for the core and its recent
    completion rate; ``None`` while there is no throughput to extrapolate from.
    """

    task: TaskView
    created: bool
    queue_position: int
    estimated_start: float | None


# fmt: off
build_task_view: Callable[
    [str, str, int, TaskStatus, int, int, float | None, Mapping[str, Any], bool, str | None, float,
     str | None, float | None, float | None, bool, Mapping[str, Any] | None, Mapping[str, Any] | None,
     str | None, float, float, float | None],
    TaskView,
] = positional_builder(TaskView)
"""``TaskView(*fields)`` for a quarter of the cost (hot: one per dispatched or claimed task)."""
build_accepted: Callable[[TaskView, bool, int, float | None], DispatchAccepted] = positional_builder(
    DispatchAccepted
)
"""``DispatchAccepted(*fields)``, cheaper (one per dispatched task)."""
# fmt: on


@dataclass(frozen=True, slots=True)
class ClaimedTask:
    """A task handed to a worker; ``lease_token`` proves ownership in heartbeats and reports."""

    task: TaskView
    lease_token: str


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    """The extended lease, and whether an operator asked to cancel the task (stop and report cancelled)."""

    task_id: str
    lease_expires_at: float
    cancel_requested: bool


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of tasks, newest first; pass ``next_cursor`` back to get the next page (None: last page)."""

    tasks: tuple[TaskView, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class CoreStats:
    """Queue figures for one core. Rates are per second over the last minute."""

    core_id: str
    queued: int
    queued_by_priority: Mapping[int, int]
    oldest_queued_age_s: float | None
    claimed: int
    running: int
    retrying: int
    waiting_workers: int
    completions_per_s: float
    claims_per_s: float


@dataclass(frozen=True, slots=True)
class QueueStatsView:
    """Queue figures per core (only cores with tasks in flight, or recent activity)."""

    cores: tuple[CoreStats, ...]
    taken_at: float


@dataclass(frozen=True, slots=True)
class CoreState:
    """A core's isolation after an `IsolateCore` / `RestoreCore` (``changed``: false if it already was so)."""

    core_id: str
    isolated: bool
    fallback: str | None
    since: float | None
    reason: str | None
    changed: bool


@dataclass(frozen=True, slots=True)
class CoreHealthView:
    """One core as the monitor sees it.

    ``last_heartbeat_at`` / ``stalest_heartbeat_at``: the freshest / the oldest last sign of life (claim or
    heartbeat) among the workers holding its tasks now (None when none is held) — a worker that stopped
    heart-beating shows as an old ``stalest_heartbeat_at``. ``last_claim_at``: when a worker last asked for
    or got one of its tasks (kept in memory: None after a restart until the next claim).
    """

    core_id: str
    queued: int
    claimed: int
    running: int
    isolated: bool
    fallback: str | None
    isolated_since: float | None
    isolation_reason: str | None
    waiting_workers: int
    last_claim_at: float | None
    last_heartbeat_at: float | None
    stalest_heartbeat_at: float | None


# --- requests --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What a new task needs; the fields of ``Dispatch`` without the reply (used by ``DispatchBatch``).

    ``timeout`` (seconds from claim) bounds one attempt; ``not_before`` delays the first claim;
    ``idempotency_key`` makes a repeated dispatch for the same core return the existing task.
    """

    core_id: str
    priority: int = 0
    timeout: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    stay: bool = False
    idempotency_key: str | None = None
    max_attempts: int = 3
    not_before: float | None = None


build_task_spec: Callable[
    [str, int, float | None, Mapping[str, Any], bool, str | None, int, float | None], TaskSpec
] = positional_builder(TaskSpec)
"""``TaskSpec(*fields)`` with every field given, for a quarter of the cost (one per task of a batch)."""


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Queue one task for ``core_id`` (see ``TaskSpec`` for the fields)."""

    core_id: str
    reply: Reply[DispatchAccepted]
    priority: int = 0
    timeout: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    stay: bool = False
    idempotency_key: str | None = None
    max_attempts: int = 3
    not_before: float | None = None

    @classmethod
    def of(cls, spec: TaskSpec, reply: Reply[DispatchAccepted]) -> Dispatch:
        """The message that queues ``spec`` (the inverse of `spec`)."""
        return cls(
            spec.core_id,
            reply,
            priority=spec.priority,
            timeout=spec.timeout,
            metadata=spec.metadata,
            stay=spec.stay,
            idempotency_key=spec.idempotency_key,
            max_attempts=spec.max_attempts,
            not_before=spec.not_before,
        )

    def spec(self) -> TaskSpec:
        """The task this message describes."""
        return build_task_spec(
            self.core_id,
            self.priority,
            self.timeout,
            self.metadata,
            self.stay,
            self.idempotency_key,
            self.max_attempts,
            self.not_before,
        )


@dataclass(frozen=True, slots=True)
class DispatchBatch:
    """Queue many tasks in one durable write; all are accepted or none (a bad spec fails the batch)."""

    tasks: Sequence[TaskSpec]
    reply: Reply[tuple[DispatchAccepted, ...]]


@dataclass(frozen=True, slots=True)
class Claim:
    """Take the next task of ``core_id`` under a lease of ``lease`` seconds.

    Long-poll: the answer comes when a task is available; the asker's cancel scope is the deadline. An
    asker that gave up never leaves a task claimed in its name.
    """

    core_id: str
    worker_id: str
    reply: Reply[ClaimedTask]
    lease: float = 30.0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Extend the lease (by ``lease`` seconds, default: the claim's) and optionally record progress."""

    task_id: str
    lease_token: str
    reply: Reply[HeartbeatAck]
    progress: Mapping[str, Any] | None = None
    lease: float | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """A worker's status change for the task it holds (``result`` on success, ``error`` on failure)."""

    task_id: str
    lease_token: str
    status: ReportStatus
    reply: Reply[TaskView]
    result: Mapping[str, Any] | None = None
    error: str | None = None
    progress: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ClaimMany:
    """Take up to ``max`` tasks of ``core_id`` at once, each under its own lease of ``lease`` seconds
    (a worker's prefetch: one round trip for many tasks).

    Long-poll like `Claim`: the answer comes as soon as at least one task is available and holds between
    1 and ``max`` tasks, best rank first. An asker that gave up never leaves a task claimed in its name.
    """

    core_id: str
    worker_id: str
    reply: Reply[tuple[ClaimedTask, ...]]
    max: int = 1
    lease: float = 30.0


@dataclass(frozen=True, slots=True)
class HeartbeatItem:
    """One heartbeat of a `HeartbeatMany` (the fields of `Heartbeat` without the reply)."""

    task_id: str
    lease_token: str
    progress: Mapping[str, Any] | None = None
    lease: float | None = None


build_heartbeat_item: Callable[[str, str, Mapping[str, Any] | None, float | None], HeartbeatItem] = (
    positional_builder(HeartbeatItem)
)
"""``HeartbeatItem(*fields)`` with every field given, for a fraction of the cost (one per heartbeat)."""


@dataclass(frozen=True, slots=True)
class HeartbeatMany:
    """Many heartbeats in one message. Each item is checked and applied on its own, exactly as a
    `Heartbeat`; the answer holds, in item order, the item's `HeartbeatAck` or its `DispatcherError`
    (a refused item does not fail the others). Answered after the commit of all of them."""

    items: Sequence[HeartbeatItem]
    reply: Reply[tuple[HeartbeatAck | DispatcherError, ...]]


@dataclass(frozen=True, slots=True)
class ReportItem:
    """One report of a `ReportMany` (the fields of `Report` without the reply)."""

    task_id: str
    lease_token: str
    status: ReportStatus
    result: Mapping[str, Any] | None = None
    error: str | None = None
    progress: Mapping[str, Any] | None = None


build_report_item: Callable[
    [str, str, ReportStatus, Mapping[str, Any] | None, str | None, Mapping[str, Any] | None], ReportItem
] = positional_builder(ReportItem)
"""``ReportItem(*fields)`` with every field given, for a fraction of the cost (one per report)."""


@dataclass(frozen=True, slots=True)
class ReportMany:
    """Many reports in one message. Each item is checked and applied on its own, exactly as a `Report`;
    the answer holds, in item order, the task as it is now or the item's `DispatcherError` (a refused item
    does not fail the others). Answered after the commit of all of them."""

    items: Sequence[ReportItem]
    reply: Reply[tuple[TaskView | DispatcherError, ...]]


@dataclass(frozen=True, slots=True)
class SetStatus:
    """A status change without a lease token: an operator, or an integration reporting through the signed
    webhook. Applies the lifecycle exactly as a holder's report would, or `IllegalTransition`:

    * ``running`` (from claimed; from running it records ``progress``): the holder keeps its lease;
    * ``succeeded``, ``failed``, ``timed_out`` (from claimed or running; a claimed task passes through
      running); failed and timed_out retry with backoff or go dead, as reports and timeouts do;
    * ``cancelled`` (from queued, retrying, claimed or running): at once, not a request to the worker;
    * ``dead`` (from claimed or running): no retry;
    * ``queued``: a held task is re-queued with its attempt counted (as a lapsed lease); a dead one is
      re-queued with a fresh attempt budget (as `Requeue`).

    Taking a held task to any other status than running clears its lease: the holder's next heartbeat or
    report gets `StaleLease`, so it stops. Asking for the final status a task already has (succeeded,
    cancelled, dead) returns it unchanged. ``principal`` and ``reason`` go into the event (``by``,
    ``detail``) with ``lease_free: true``. Only `SETTABLE_STATUSES` may be asked for (else `InvalidTask`).
    """

    task_id: str
    status: TaskStatus
    reply: Reply[TaskView]
    result: Mapping[str, Any] | None = None
    error: str | None = None
    progress: Mapping[str, Any] | None = None
    principal: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Release:
    """Hand a held task back (its worker cannot finish it, e.g. it is shutting down): re-queued at its old
    place WITHOUT counting the attempt (event ``task.queued`` with reason ``released``), or cancelled if a
    cancel was requested meanwhile. The token is stale afterwards. `StaleLease` if the caller no longer
    holds the task."""

    task_id: str
    lease_token: str
    reply: Reply[TaskView]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel a task: at once if it waits, else flag it and tell the worker on its next heartbeat."""

    task_id: str
    reply: Reply[TaskView]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Requeue:
    """Put a dead task back in the queue (operator action), by default with a fresh attempt budget."""

    task_id: str
    reply: Reply[TaskView]
    reset_attempts: bool = True


@dataclass(frozen=True, slots=True)
class GetTask:
    """One task by id."""

    task_id: str
    reply: Reply[TaskView]


@dataclass(frozen=True, slots=True)
class ListTasks:
    """Tasks newest first, optionally filtered by status and/or core; ``cursor`` from the previous page."""

    reply: Reply[TaskPage]
    statuses: frozenset[TaskStatus] | None = None
    core_id: str | None = None
    cursor: str | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class ListEvents:
    """Task events with seq > ``after_seq``, oldest first: of one task, or of all (optionally one core)."""

    reply: Reply[tuple[StoredEvent, ...]]
    task_id: str | None = None
    core_id: str | None = None
    after_seq: int = 0
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Depth per core and priority, oldest queued age, throughput."""

    reply: Reply[QueueStatsView]


@dataclass(frozen=True, slots=True)
class IsolateCore:
    """Take ``core_id`` out of rotation (durably: it stays isolated across restarts until restored).

    Claims for it get nothing (they wait, as if its queue were empty); its tasks keep waiting. With a
    ``fallback`` core, the fallback's workers claim the isolated core's queued tasks as well (best rank
    first across both cores); the tasks keep their ``core_id`` so that restoring needs no move back. Claims
    already being written when the isolation commits still complete. Fallbacks are not chained: if the
    fallback is itself isolated, the tasks wait. Isolating again updates the fallback/reason. Event
    ``core.isolated``.
    """

    core_id: str
    reply: Reply[CoreState]
    fallback: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RestoreCore:
    """Put an isolated core back into rotation (``changed`` false if it was not). Event ``core.restored``."""

    core_id: str
    reply: Reply[CoreState]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RequeueCore:
    """Force-expire the leases of the core's claimed and running tasks now, as if they had lapsed: each is
    re-queued with its attempt counted (dead when out of attempts, cancelled when a cancel was requested);
    their holders get `StaleLease` from then on. Answers how many tasks were taken back. Event
    ``core.requeued`` (also when there was nothing to take)."""

    core_id: str
    reply: Reply[int]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CoreHealth:
    """The health figures of one core (zeros for a core nobody has used)."""

    core_id: str
    reply: Reply[CoreHealthView]


@dataclass(frozen=True, slots=True)
class ListCores:
    """Health figures of every known core: with unfinished tasks, isolated, or with workers seen."""

    reply: Reply[tuple[CoreHealthView, ...]]


DispatcherMsg = (
    Dispatch
    | DispatchBatch
    | Claim
    | ClaimMany
    | Heartbeat
    | HeartbeatMany
    | Report
    | ReportMany
    | SetStatus
    | Release
    | Cancel
    | Requeue
    | GetTask
    | ListTasks
    | ListEvents
    | QueueStats
    | IsolateCore
    | RestoreCore
    | RequeueCore
    | CoreHealth
    | ListCores
)
