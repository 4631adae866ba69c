"""`SqliteTaskStore`: the `TaskStore` on the shared storage layer (group-committed writes, reader thread).

Claims need no row locks here: every write op runs in the single writer connection, one after another,
so two claims can never select the same queued row. (The PostgreSQL store uses FOR UPDATE SKIP LOCKED.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors.storage import Database, StoredEvent

from . import sqlite_commands
from . import sqlite_cores as cores
from . import sqlite_ops as ops
from . import sqlite_reads as reads
from . import sqlite_sweeps as sweeps
from .messages import ClaimedTask, CoreState, DispatcherError, TaskPage, TaskStatus, TaskView
from .schema import COMPONENT, MIGRATIONS
from .sqlite_ops import Rules
from .store import Backlog, ClaimRequest, Command, CoreCounts, CoreLoad, Isolation, Outcome


class SqliteTaskStore:
    """Tasks in the shared SQLite database. Create with `open` (runs the dispatcher's migrations)."""

    def __init__(self, db: Database, rules: Rules) -> None:
        """Private: use `SqliteTaskStore.open`."""
        self._db = db
        self._rules = rules

    @classmethod
    async def open(cls, db: Database, rules: Rules | None = None) -> SqliteTaskStore:
        """Bring the ``tasks`` schema up to date and return the store."""
        await db.migrate(COMPONENT, MIGRATIONS)
        return cls(db, rules or Rules())

    @property
    def rules(self) -> Rules:
        """The policies this store applies."""
        return self._rules

    # --- writes --------------------------------------------------------------------------------------------

    async def execute(self, commands: Sequence[Command], now: float) -> list[Outcome[Any] | DispatcherError]:
        """See `TaskStore.execute`."""
        return await self._db.write(lambda tx: sqlite_commands.execute(tx, self._rules, commands, now))

    async def claim(
        self, core_id: str, requests: Sequence[ClaimRequest], now: float, also: Sequence[str] = ()
    ) -> Outcome[list[ClaimedTask]]:
        """See `TaskStore.claim`."""
        return await self._db.write(lambda tx: ops.claim(tx, core_id, requests, now, also))

    async def release(self, task_id: str, lease_token: str, now: float) -> Outcome[bool]:
        """See `TaskStore.release`."""
        return await self._db.write(lambda tx: ops.release(tx, task_id, lease_token, now))

    async def expire_leases(self, now: float, limit: int) -> Outcome[int]:
        """See `TaskStore.expire_leases`."""
        return await self._db.write(lambda tx: sweeps.expire_leases(tx, now, limit))

    async def expire_deadlines(self, now: float, limit: int) -> Outcome[int]:
        """See `TaskStore.expire_deadlines`."""
        return await self._db.write(lambda tx: sweeps.expire_deadlines(tx, self._rules, now, limit))

    async def promote_retries(self, now: float, limit: int) -> Outcome[int]:
        """See `TaskStore.promote_retries`."""
        return await self._db.write(lambda tx: sweeps.promote_retries(tx, self._rules, now, limit))

    async def prune_finished(self, before: float, limit: int) -> int:
        """See `TaskStore.prune_finished`."""
        return await self._db.write(lambda tx: sweeps.prune_finished(tx, before, limit))

    # --- reads ---------------------------------------------------------------------------------------------

    async def next_retry_due(self) -> float | None:
        """See `TaskStore.next_retry_due`."""
        return await self._db.read(reads.next_retry_due)

    async def get(self, task_id: str) -> TaskView:
        """See `TaskStore.get`."""
        return await self._db.read(lambda conn: reads.get(conn, task_id))

    async def list_tasks(
        self, statuses: frozenset[TaskStatus] | None, core_id: str | None, cursor: str | None, limit: int
    ) -> TaskPage:
        """See `TaskStore.list_tasks`."""
        return await self._db.read(lambda conn: reads.list_page(conn, statuses, core_id, cursor, limit))

    async def events(
        self, task_id: str | None, core_id: str | None, after_seq: int, limit: int
    ) -> list[StoredEvent]:
        """See `TaskStore.events`."""
        return await self._db.events_after(
            after_seq, limit=limit, topics=("task",), subject=task_id, core_id=core_id
        )

    async def counts(self, now: float) -> list[CoreCounts]:
        """See `TaskStore.counts`."""
        return await self._db.read(lambda conn: reads.counts(conn, now))

    async def backlog(self, now: float) -> Backlog:
        """See `TaskStore.backlog`."""
        return await self._db.read(lambda conn: reads.backlog(conn, now))

    # --- cores ---------------------------------------------------------------------------------------------

    async def isolate_core(
        self, core_id: str, fallback: str | None, reason: str | None, now: float
    ) -> CoreState:
        """See `TaskStore.isolate_core`."""
        return await self._db.write(lambda tx: cores.isolate(tx, core_id, fallback, reason, now))

    async def restore_core(self, core_id: str, reason: str | None, now: float) -> CoreState:
        """See `TaskStore.restore_core`."""
        return await self._db.write(lambda tx: cores.restore(tx, core_id, reason, now))

    async def requeue_core(self, core_id: str, reason: str | None, now: float) -> Outcome[int]:
        """See `TaskStore.requeue_core`."""
        return await self._db.write(lambda tx: cores.requeue_core(tx, core_id, reason, now))

    async def isolations(self) -> list[Isolation]:
        """See `TaskStore.isolations`."""
        return await self._db.read(cores.isolations)

    async def core_loads(self) -> list[CoreLoad]:
        """See `TaskStore.core_loads`."""
        return await self._db.read(cores.core_loads)
