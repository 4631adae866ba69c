"""A dispatcher on a real SQLite file, driven through its messages, with a clock that follows Trio's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import trio

from actors.dispatcher.actor import DispatcherActor
from actors.dispatcher.config import DispatcherConfig
from actors.dispatcher.messages import (
    Cancel,
    Claim,
    ClaimedTask,
    Dispatch,
    DispatchAccepted,
    DispatcherMsg,
    GetTask,
    Heartbeat,
    HeartbeatAck,
    ListEvents,
    Report,
    ReportStatus,
    Requeue,
    TaskStatus,
    TaskView,
)
from actors.dispatcher.sqlite_ops import Rules
from actors.dispatcher.sqlite_store import SqliteTaskStore
from actors.storage import Database, StoredEvent
from runtime import ActorRef, open_actor

EPOCH = 1_800_000_000.0
LONG = 86_400.0  # a lease that never lapses by accident in a test
QUIET = DispatcherConfig(sweep_interval_s=3600.0, retention_interval_s=86_400.0)
"""No periodic timers to jump through: for tests that sleep long and need no sweeps (and that so prove
the exact wake-up path, not the per-sweep re-poll of parked claims)."""


def trio_clock() -> float:
    """Unix-like seconds that advance with Trio's (mock) clock."""
    return EPOCH + trio.current_time()


@dataclass
class Harness:
    """The running dispatcher plus shortcuts for its messages."""

    db: Database
    store: SqliteTaskStore
    ref: ActorRef[DispatcherMsg]
    published: list[StoredEvent] = field(default_factory=list)

    async def dispatch(self, core: str = "core-a", **fields: Any) -> DispatchAccepted:
        return await self.ref.ask(lambda r: Dispatch(core_id=core, reply=r, **fields))

    async def claim(self, core: str = "core-a", worker: str = "w1", lease: float = LONG) -> ClaimedTask:
        return await self.ref.ask(lambda r: Claim(core_id=core, worker_id=worker, lease=lease, reply=r))

    async def report(
        self, claimed: ClaimedTask, status: str, token: str | None = None, **fields: Any
    ) -> TaskView:
        tok = claimed.lease_token if token is None else token
        return await self.ref.ask(
            lambda r: Report(claimed.task.id, tok, ReportStatus(status), reply=r, **fields)
        )

    async def heartbeat(
        self, claimed: ClaimedTask, progress: Mapping[str, Any] | None = None, lease: float | None = None
    ) -> HeartbeatAck:
        return await self.ref.ask(
            lambda r: Heartbeat(claimed.task.id, claimed.lease_token, r, progress=progress, lease=lease)
        )

    async def get(self, task_id: str) -> TaskView:
        return await self.ref.ask(lambda r: GetTask(task_id, r))

    async def cancel(self, task_id: str) -> TaskView:
        return await self.ref.ask(lambda r: Cancel(task_id, r))

    async def requeue(self, task_id: str) -> TaskView:
        return await self.ref.ask(lambda r: Requeue(task_id, r))

    async def settles(self, task_id: str, *statuses: TaskStatus, within: float = 120.0) -> TaskView:
        """Wait (virtual time) until the task has one of ``statuses``, for effects of background sweeps.

        Asserting right after ``trio.sleep(past_the_deadline)`` races the sweep when a slow write lets
        the mock clock jump over it; the sweep still acts within a sweep interval or two.
        """
        deadline = trio.current_time() + within
        while (task := await self.get(task_id)).status not in statuses:
            assert trio.current_time() < deadline, f"task is {task.status}, never became {statuses}"
            await trio.sleep(0.5)
        return task

    async def event_types(self, task_id: str) -> list[str]:
        events: tuple[StoredEvent, ...] = await self.ref.ask(lambda r: ListEvents(r, task_id=task_id))
        return [e.type for e in events]


@asynccontextmanager
async def running_dispatcher(
    path: Path, *, config: DispatcherConfig | None = None, rules: Rules | None = None
) -> AsyncIterator[Harness]:
    """Open the database at ``path``, migrate, and run a dispatcher on it until the block exits."""
    published: list[StoredEvent] = []
    cfg = replace(config or DispatcherConfig(), clock=trio_clock)
    async with Database.open(path, publish=published.extend) as db:
        store = await SqliteTaskStore.open(db, rules)
        async with open_actor(lambda: DispatcherActor(store, cfg), name="dispatcher") as ref:
            yield Harness(db, store, ref, published)
