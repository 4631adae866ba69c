"""The dispatcher actor: accepts tasks, hands them to workers under leases, tracks them to the end.

Concurrency model. ``handle`` never waits for the database: it validates the message and starts the durable
write as a background task of this incarnation, then takes the next message. Many writes are therefore in
flight at once and the storage layer commits them together (group commit, one thread hop per batch).
Correctness does not depend on their order: every write is a compare-and-set on the stored row, checked
inside its own transaction (the store enforces the lifecycle), and the reply is sent only after the commit.
The actor's memory holds no task state, only bookkeeping derived from committed changes (`Ledger`) and the
parked long-poll claims (`Waiters`), both touched only on the Trio thread between awaits.

Claims. A ``Claim`` is parked in its core's line; one feeder task per core claims for the whole line in one
write, in arrival order, and parks who got nothing until a task becomes claimable (a dispatch, a retry, a
lease lapse, a delayed task coming due). A claim whose asker gave up before the answer is released again.

Background loops: the lease/timeout sweep (every ``sweep_interval_s``), due retries and delayed tasks (timed
exactly), and retention (finished tasks and their events, in small batches).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, assert_never

import trio

from runtime import Actor, DomainError, Reply

from .config import DispatcherConfig
from .ledger import Ledger
from .messages import (
    Cancel,
    Claim,
    ClaimedTask,
    CoreStats,
    Dispatch,
    DispatchAccepted,
    DispatchBatch,
    DispatcherMsg,
    GetTask,
    Heartbeat,
    InvalidTask,
    ListEvents,
    ListTasks,
    QueueStats,
    QueueStatsView,
    Report,
    Requeue,
    TaskSpec,
    TaskStatus,
)
from .policy import estimate_start, validate_lease, validate_spec
from .store import Change, ClaimRequest, CoreCounts, Dispatched, Outcome, TaskStore
from .waiters import Waiter, Waiters


class DispatcherActor(Actor[DispatcherMsg]):
    """See the module docstring. One instance per incarnation; all durable state is in ``store``."""

    def __init__(self, store: TaskStore, config: DispatcherConfig | None = None) -> None:
        """``store`` must already be migrated (e.g. ``await SqliteTaskStore.open(db)``)."""
        self._store = store
        self._cfg = config or DispatcherConfig()
        self._ledger = Ledger()
        self._waiters = Waiters()
        self._feeding: dict[str, int] = {}  # core -> claims in the feeder's write now
        self._slots = trio.Semaphore(self._cfg.max_inflight)
        self._busy = 0
        self._idle = trio.Event()
        self._poke = trio.Event()
        self._wake_at = math.inf
        self._last_now = 0.0

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Rebuild bookkeeping from the store, then start the sweeps (leases survive a crash as stored)."""
        self._ledger.load(await self._store.backlog(self._now()))
        self.spawn(self._sweep_loop)
        self.spawn(self._due_loop)
        self.spawn(self._retention_loop)

    async def on_stop(self) -> None:
        """Let writes in flight finish, so their askers get their answers."""
        while self._busy:
            self._idle = trio.Event()
            await self._idle.wait()

    def _now(self) -> float:
        # Never step backwards: FIFO within a priority relies on dispatch times that do not decrease.
        self._last_now = max(self._last_now, self._cfg.clock())
        return self._last_now

    # --- messages ------------------------------------------------------------------------------------------

    async def handle(self, message: DispatcherMsg) -> None:
        """Validate, then start the durable work in the background (see the module docstring)."""
        match message:
            case Dispatch(reply=reply):
                spec = message.spec()
                validate_spec(spec)
                await self._start(reply, self._dispatch, (spec,), reply, True)
            case DispatchBatch(tasks=tasks, reply=reply):
                specs = tuple(tasks)
                if len(specs) > self._cfg.max_dispatch_batch:
                    raise InvalidTask(f"at most {self._cfg.max_dispatch_batch} tasks per batch")
                for spec in specs:
                    validate_spec(spec)
                await self._start(reply, self._dispatch, specs, reply, False)
            case Claim(core_id=core, worker_id=worker, lease=lease, reply=reply):
                validate_lease(lease)
                self._waiters.park(core, worker, lease, reply)
                self._feed(core)
            case Heartbeat(task_id=task_id, lease_token=token, lease=lease, progress=progress, reply=reply):
                if lease is not None:
                    validate_lease(lease)
                await self._start(
                    reply, self._write, reply, self._store.heartbeat, task_id, token, lease, progress
                )
            case Report(reply=reply):
                m = message
                report = (m.task_id, m.lease_token, m.status, m.result, m.error, m.progress)
                await self._start(reply, self._write, reply, self._store.report, *report)
            case Cancel(task_id=task_id, reason=reason, reply=reply):
                await self._start(reply, self._write, reply, self._store.cancel, task_id, reason)
            case Requeue(task_id=task_id, reset_attempts=reset, reply=reply):
                await self._start(reply, self._write, reply, self._store.requeue, task_id, reset)
            case GetTask(task_id=task_id, reply=reply):
                await self._start(reply, self._read, reply, self._store.get, task_id)
            case ListTasks(statuses=statuses, core_id=core, cursor=cursor, limit=limit, reply=reply):
                _check_limit(limit, 1000)
                args = (statuses, core, cursor, limit)
                await self._start(reply, self._read, reply, self._store.list_tasks, *args)
            case ListEvents(task_id=task_id, core_id=core, after_seq=after, limit=limit, reply=reply):
                _check_limit(limit, 10_000)
                await self._start(reply, self._events, reply, task_id, core, after, limit)
            case QueueStats(reply=reply):
                await self._start(reply, self._stats, reply)
            case _:
                assert_never(message)

    async def _start(self, reply: Reply[Any], fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        # The semaphore bounds work in flight: when it is exhausted, handle() waits and the mailbox fills.
        await self._slots.acquire()
        self._busy += 1
        self.spawn(self._guard, reply, fn, args)

    async def _guard(
        self, reply: Reply[Any], fn: Callable[..., Awaitable[None]], args: tuple[Any, ...]
    ) -> None:
        try:
            await fn(*args)
        except DomainError as error:
            reply.fail(error)
        finally:
            self._slots.release()
            self._done()

    def _done(self) -> None:
        self._busy -= 1
        if self._busy == 0:
            self._idle.set()

    # --- writes --------------------------------------------------------------------------------------------

    async def _write(
        self, reply: Reply[Any], method: Callable[..., Awaitable[Outcome[Any]]], *args: Any
    ) -> None:
        now = self._now()
        outcome = await method(*args, now)
        self._absorb(outcome.changes, now)
        reply.send(outcome.value)

    async def _read(self, reply: Reply[Any], query: Callable[..., Awaitable[Any]], *args: Any) -> None:
        reply.send(await query(*args))

    async def _events(
        self, reply: Reply[Any], task_id: str | None, core: str | None, after: int, n: int
    ) -> None:
        reply.send(tuple(await self._store.events(task_id, core, after, n)))

    async def _dispatch(self, specs: tuple[TaskSpec, ...], reply: Reply[Any], single: bool) -> None:
        now = self._now()
        outcome = await self._store.dispatch(specs, now)
        accepted = self._accept(outcome, now)
        reply.send(accepted[0] if single else tuple(accepted))

    def _accept(self, outcome: Outcome[list[Dispatched]], now: float) -> list[DispatchAccepted]:
        """Account for new tasks one by one, so each learns how many were queued ahead of it."""
        changes = iter(outcome.changes)  # exactly one per created task, in order
        available: set[str] = set()
        accepted: list[DispatchAccepted] = []
        for item in outcome.value:
            task = item.task
            ahead = self._ledger.ahead(task.core_id, task.priority)
            if item.created:
                if self._ledger.apply_one(next(changes), now):
                    available.add(task.core_id)
            elif task.status is TaskStatus.QUEUED:
                ahead -= 1
            eta: float | None = None
            if task.status is TaskStatus.QUEUED:
                rate = self._ledger.completions[task.core_id].rate(now)
                eta = estimate_start(now, ahead, self._idle_workers(task.core_id), rate)
                if eta is not None:
                    eta = max(eta, task.not_before)
            accepted.append(DispatchAccepted(task, item.created, max(ahead, 0), eta))
        self._ledger.bump(available)
        self._after_changes(available)
        return accepted

    def _idle_workers(self, core: str) -> int:
        return self._waiters.count(core) + self._feeding.get(core, 0)

    def _absorb(self, changes: tuple[Change, ...], now: float) -> None:
        if changes:
            self._after_changes(self._ledger.apply(changes, now))

    def _after_changes(self, available: set[str]) -> None:
        for core in available:
            self._feed(core)
        if self._ledger.next_wakeup() < self._wake_at:
            self._poke.set()

    # --- claims --------------------------------------------------------------------------------------------

    def _feed(self, core: str) -> None:
        """Start the feeder of ``core`` unless it runs, nobody waits, or the queue is known to be empty."""
        if core in self._feeding or not self._waiters.count(core) or not self._ledger.maybe_claimable(core):
            return
        self._feeding[core] = 0
        self._busy += 1
        self.spawn(self._feeder, core)

    async def _feeder(self, core: str) -> None:
        try:
            while batch := self._waiters.take(core, self._cfg.claim_batch):
                generation = self._ledger.generation[core]
                now = self._now()
                requests = [ClaimRequest(w.worker_id, w.lease_s) for w in batch]
                self._feeding[core] = len(batch)
                outcome = await self._store.claim(core, requests, now)
                self._feeding[core] = 0
                self._absorb(outcome.changes, now)
                for waiter, claimed in zip(batch, outcome.value, strict=False):
                    self._deliver(waiter, claimed)
                unserved = batch[len(outcome.value) :]
                if unserved:
                    self._waiters.put_back(core, unserved)
                    if self._ledger.generation[core] == generation:  # nothing new: park until something is
                        self._ledger.empty_at[core] = generation
                        return
        finally:
            del self._feeding[core]
            self._done()

    def _deliver(self, waiter: Waiter, claimed: ClaimedTask) -> None:
        if waiter.reply.pending:
            waiter.reply.send(claimed)
            return
        # The asker gave up while its claim was being written: give the task back at once.
        self._busy += 1
        self.spawn(self._release, claimed)

    async def _release(self, claimed: ClaimedTask) -> None:
        try:
            now = self._now()
            outcome = await self._store.release(claimed.task.id, claimed.lease_token, now)
            self._absorb(outcome.changes, now)
        finally:
            self._done()

    # --- background loops ----------------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        while True:
            for sweep in (self._store.expire_leases, self._store.expire_deadlines):
                while True:
                    now = self._now()
                    outcome = await sweep(now, self._cfg.sweep_batch)
                    self._absorb(outcome.changes, now)
                    if outcome.value < self._cfg.sweep_batch:
                        break
            await trio.sleep(self._cfg.sweep_interval_s)

    async def _due_loop(self) -> None:
        while True:
            now = self._now()
            self._wake_at = self._ledger.next_wakeup()
            if self._wake_at > now:
                self._poke = trio.Event()
                with trio.move_on_after(min(self._wake_at - now, 3600.0)):
                    await self._poke.wait()
                continue
            for core in self._ledger.pop_due(now):
                self._feed(core)
            if self._ledger.next_retry <= now:
                await self._promote_retries(now)

    async def _promote_retries(self, now: float) -> None:
        self._ledger.next_retry = math.inf  # changes absorbed meanwhile may lower it again
        while True:
            outcome = await self._store.promote_retries(now, self._cfg.sweep_batch)
            self._absorb(outcome.changes, now)
            if outcome.value < self._cfg.sweep_batch:
                break
        due = await self._store.next_retry_due()
        if due is not None:
            self._ledger.next_retry = min(self._ledger.next_retry, due)

    async def _retention_loop(self) -> None:
        while True:
            await trio.sleep(self._cfg.retention_interval_s)
            before = self._now() - self._cfg.retention_s
            while await self._store.prune_finished(before, self._cfg.prune_batch) == self._cfg.prune_batch:
                pass  # each batch is its own small write, so other writes interleave

    # --- stats ---------------------------------------------------------------------------------------------

    async def _stats(self, reply: Reply[QueueStatsView]) -> None:
        now = self._now()
        stored = {c.core_id: c for c in await self._store.counts(now)}
        cores = sorted(set(stored) | set(self._waiters.cores()) | set(self._ledger.completions))
        reply.send(
            QueueStatsView(tuple(self._core_stats(core, stored.get(core), now) for core in cores), now)
        )

    def _core_stats(self, core: str, counts: CoreCounts | None, now: float) -> CoreStats:
        by_status = counts.by_status if counts is not None else {}
        oldest = counts.oldest_due_since if counts is not None else None
        return CoreStats(
            core_id=core,
            queued=by_status.get(TaskStatus.QUEUED, 0),
            queued_by_priority=dict(counts.queued_by_priority) if counts is not None else {},
            oldest_queued_age_s=None if oldest is None else max(0.0, now - oldest),
            claimed=by_status.get(TaskStatus.CLAIMED, 0),
            running=by_status.get(TaskStatus.RUNNING, 0),
            retrying=by_status.get(TaskStatus.RETRYING, 0),
            waiting_workers=self._idle_workers(core),
            completions_per_s=self._ledger.completions[core].rate(now),
            claims_per_s=self._ledger.claims[core].rate(now),
        )


def _check_limit(limit: int, most: int) -> None:
    if not 1 <= limit <= most:
        raise InvalidTask(f"limit must be within [1, {most}]")
