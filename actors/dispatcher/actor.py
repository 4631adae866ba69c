"""The dispatcher actor: accepts tasks, hands them to workers under leases, tracks them to the end.

Concurrency model. ``handle`` never waits for the database: it validates the message, queues it as a store
`Command` and takes the next message. Up to ``write_parallelism`` flusher tasks each run everything queued
as one `TaskStore.execute` (one write op), and the storage layer group-commits those with the other stores'
writes (one thread hop + COMMIT per batch). Replies are sent only after the commit. Correctness does not
depend on timing: every command is a compare-and-set on the stored row, checked against the lifecycle
inside the transaction that changes it, and commands run in arrival order. The actor's memory holds no task
state, only bookkeeping derived from committed changes (`Ledger`) and the parked long-poll claims
(`Waiters`), both touched only on the Trio thread between awaits. Reads run as background tasks too.

Claims. A ``Claim`` is parked in its core's line; one feeder task per core claims for the whole line in one
write, in arrival order, and parks who got nothing until a task becomes claimable (a dispatch, a retry, a
lease lapse, a delayed task coming due). A claim whose asker gave up before the answer is released again.

Background loops: the lease/timeout sweep (every ``sweep_interval_s``), due retries and delayed tasks (timed
exactly), and retention (finished tasks and their events, in small batches).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, assert_never

import trio

from runtime import Actor, DomainError, Reply

from .config import DispatcherConfig
from .cores import CoreRouting, health_view
from .ledger import Ledger
from .messages import (
    SETTABLE_STATUSES,
    Cancel,
    Claim,
    ClaimedTask,
    ClaimMany,
    CoreHealth,
    CoreHealthView,
    CoreState,
    Dispatch,
    DispatchBatch,
    DispatcherError,
    DispatcherMsg,
    GetTask,
    Heartbeat,
    HeartbeatItem,
    HeartbeatMany,
    InvalidTask,
    IsolateCore,
    ListCores,
    ListEvents,
    ListTasks,
    QueueStats,
    QueueStatsView,
    Release,
    Report,
    ReportItem,
    ReportMany,
    Requeue,
    RequeueCore,
    RestoreCore,
    SetStatus,
)
from .policy import encode_json, validate_lease, validate_spec
from .stats import core_stats
from .store import (
    CancelCmd,
    Change,
    Command,
    DispatchCmd,
    HeartbeatCmd,
    Isolation,
    Outcome,
    ReleaseCmd,
    ReportCmd,
    RequeueCmd,
    SetStatusCmd,
    TaskStore,
    build_claim_request,
    build_heartbeat_cmd,
    build_report_cmd,
)
from .waiters import Waiter, Waiters

Item = TypeVar("Item")


@dataclass(slots=True)
class _Request:
    commands: list[Command]
    reply: Reply[Any]
    single: bool  # a Dispatch (one value) rather than a DispatchBatch (a tuple)
    weight: int  # tasks it writes, for batch sizing
    # A *Many message: one answer per item, in order; items refused before the write hold their error.
    items: list[DispatcherError | None] | None = None


class DispatcherActor(Actor[DispatcherMsg]):
    """See the module docstring. One instance per incarnation; all durable state is in ``store``."""

    def __init__(self, store: TaskStore, config: DispatcherConfig | None = None) -> None:
        """``store`` must already be migrated (e.g. ``await SqliteTaskStore.open(db)``)."""
        self._store = store
        self._cfg = config or DispatcherConfig()
        self._ledger = Ledger()
        self._waiters = Waiters()
        self._routing = CoreRouting()
        self._core_lock = trio.Lock()  # core isolation changes apply to routing in commit order
        self._last_claim: dict[str, float] = {}  # core -> when a worker last asked for or got a task
        self._feeding: dict[str, int] = {}  # core -> claims in the feeder's write now
        self._slots = trio.Semaphore(self._cfg.max_inflight)
        self._queue: deque[_Request] = deque()
        self._queued_weight = 0
        self._flushers = 0
        self._room = trio.Event()
        self._busy = 0
        self._idle = trio.Event()
        self._poke = trio.Event()
        self._wake_at = math.inf
        self._last_now = 0.0

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Rebuild bookkeeping from the store, then start the sweeps (leases survive a crash as stored)."""
        self._ledger.load(await self._store.backlog(self._now()))
        self._routing.load(await self._store.isolations())
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
                await self._submit(DispatchCmd((spec,), (validate_spec(spec),)), reply, single=True)
            case DispatchBatch(tasks=tasks, reply=reply):
                specs = tuple(tasks)
                if len(specs) > self._cfg.max_dispatch_batch:
                    raise InvalidTask(f"at most {self._cfg.max_dispatch_batch} tasks per batch")
                metadata = tuple([validate_spec(spec) for spec in specs])
                await self._submit(DispatchCmd(specs, metadata), reply)
            case Claim(core_id=core, worker_id=worker, lease=lease, reply=reply):
                validate_lease(lease)
                self._last_claim[core] = self._now()
                self._waiters.park(core, worker, lease, reply)
                self._feed(core)
            case ClaimMany(core_id=core, worker_id=worker, lease=lease, max=most, reply=reply):
                validate_lease(lease)
                self._check_batch(most, "max")
                self._last_claim[core] = self._now()
                self._waiters.park(core, worker, lease, reply, want=most, many=True)
                self._feed(core)
            case Heartbeat(task_id=task_id, lease_token=token, lease=lease, progress=progress, reply=reply):
                await self._submit(_heartbeat_cmd(HeartbeatItem(task_id, token, progress, lease)), reply)
            case HeartbeatMany(items=items, reply=reply):
                self._check_batch(len(items), "items")
                await self._submit_many(_checked(_heartbeat_cmd, items), reply)
            case Report(reply=reply):
                m = message
                item = ReportItem(m.task_id, m.lease_token, m.status, m.result, m.error, m.progress)
                await self._submit(_report_cmd(item), reply)
            case ReportMany(items=report_items, reply=reply):
                self._check_batch(len(report_items), "items")
                await self._submit_many(_checked(_report_cmd, report_items), reply)
            case SetStatus(reply=reply):
                m2 = message
                if m2.status not in SETTABLE_STATUSES:
                    allowed = ", ".join(sorted(SETTABLE_STATUSES))
                    raise InvalidTask(f"status must be one of {allowed} (got {m2.status.value})")
                for field, value in (("result", m2.result), ("progress", m2.progress)):
                    if value is not None:
                        encode_json(value, field)
                cmd = SetStatusCmd(
                    m2.task_id, m2.status, m2.result, m2.error, m2.progress, m2.principal, m2.reason
                )
                await self._submit(cmd, reply)
            case Release(task_id=task_id, lease_token=token, reason=reason, reply=reply):
                await self._submit(ReleaseCmd(task_id, token, reason), reply)
            case Cancel(task_id=task_id, reason=reason, reply=reply):
                await self._submit(CancelCmd(task_id, reason), reply)
            case Requeue(task_id=task_id, reset_attempts=reset, reply=reply):
                await self._submit(RequeueCmd(task_id, reset), reply)
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
            case IsolateCore(core_id=core, fallback=fallback, reason=reason, reply=reply):
                _check_core(core, "core_id")
                if fallback is not None:
                    _check_core(fallback, "fallback")
                    if fallback == core:
                        raise InvalidTask("fallback must be another core than core_id")
                await self._start(reply, self._isolate, reply, core, fallback, reason)
            case RestoreCore(core_id=core, reason=reason, reply=reply):
                _check_core(core, "core_id")
                await self._start(reply, self._restore, reply, core, reason)
            case RequeueCore(core_id=core, reason=reason, reply=reply):
                _check_core(core, "core_id")
                await self._start(reply, self._requeue_core, reply, core, reason)
            case CoreHealth(core_id=core, reply=reply):
                await self._start(reply, self._core_health, reply, core)
            case ListCores(reply=reply):
                await self._start(reply, self._core_health, reply, None)
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

    def _check_batch(self, n: int, field: str) -> None:
        most = self._cfg.max_worker_batch
        if not 1 <= n <= most:
            raise InvalidTask(f"{field} must be within [1, {most}] (got {n})")

    async def _submit(self, command: Command, reply: Reply[Any], *, single: bool = False) -> None:
        """Queue a write; a few flushers run everything queued as one `TaskStore.execute` each."""
        weight = len(command.specs) if isinstance(command, DispatchCmd) else 1
        await self._enqueue(_Request([command], reply, single, weight))

    async def _submit_many(self, checked: list[Command | DispatcherError], reply: Reply[Any]) -> None:
        """Queue the valid items of a *Many message as one request (answered as a tuple, item order)."""
        commands = [c for c in checked if not isinstance(c, DispatcherError)]
        items = [c if isinstance(c, DispatcherError) else None for c in checked]
        if not commands:  # every item refused: nothing to write
            reply.send(tuple(items))
            return
        await self._enqueue(_Request(commands, reply, False, len(commands), items))

    async def _enqueue(self, request: _Request) -> None:
        while self._queued_weight >= self._cfg.max_queued_writes:  # backpressure: the mailbox fills up
            self._room = trio.Event()
            await self._room.wait()
        self._queue.append(request)
        self._queued_weight += request.weight
        if self._flushers < self._cfg.write_parallelism:
            self._flushers += 1
            self._busy += 1
            self.spawn(self._flush)

    async def _flush(self) -> None:
        try:
            while batch := self._take_writes():
                now = self._now()
                results = await self._store.execute([c for r in batch for c in r.commands], now)
                at = 0
                for request in batch:
                    if request.items is not None:
                        self._answer_many(request, results[at : at + len(request.commands)], now)
                    else:
                        self._answer(request, results[at], now)
                    at += len(request.commands)
        finally:
            self._flushers -= 1
            self._done()

    def _answer(self, request: _Request, result: Outcome[Any] | DispatcherError, now: float) -> None:
        if isinstance(result, DispatcherError):
            request.reply.fail(result)
        elif isinstance(request.commands[0], DispatchCmd):
            accepted, available = self._ledger.accept(result, now, self._idle_workers)
            self._after_changes(available)
            request.reply.send(accepted[0] if request.single else tuple(accepted))
        else:
            self._absorb(result.changes, now)
            request.reply.send(result.value)

    def _answer_many(
        self, request: _Request, results: list[Outcome[Any] | DispatcherError], now: float
    ) -> None:
        assert request.items is not None
        written = iter(results)
        answers: list[Any] = []
        changes: list[Change] = []  # absorbed once for the whole message, not item by item
        for refused in request.items:
            if refused is not None:
                answers.append(refused)
                continue
            result = next(written)
            if isinstance(result, DispatcherError):
                answers.append(result)
            else:
                changes += result.changes
                answers.append(result.value)
        self._absorb(changes, now)
        request.reply.send(tuple(answers))

    def _take_writes(self) -> list[_Request]:
        batch: list[_Request] = []
        weight = 0
        while self._queue and weight < self._cfg.write_batch:
            request = self._queue.popleft()
            self._queued_weight -= request.weight
            if request.reply.pending:  # an asker that gave up before its write started gets none
                batch.append(request)
                weight += request.weight
        if self._queued_weight < self._cfg.max_queued_writes:
            self._room.set()
        return batch

    async def _read(self, reply: Reply[Any], query: Callable[..., Awaitable[Any]], *args: Any) -> None:
        reply.send(await query(*args))

    async def _events(
        self, reply: Reply[Any], task_id: str | None, core: str | None, after: int, n: int
    ) -> None:
        reply.send(tuple(await self._store.events(task_id, core, after, n)))

    def _idle_workers(self, core: str) -> int:
        return self._waiters.count(core) + self._feeding.get(core, 0)

    def _absorb(self, changes: Sequence[Change], now: float) -> None:
        if changes:
            self._after_changes(self._ledger.apply(changes, now))

    def _after_changes(self, available: set[str]) -> None:
        for core in available:
            self._offer(core)
        if self._ledger.next_wakeup() < self._wake_at:
            self._poke.set()

    # --- claims --------------------------------------------------------------------------------------------

    def _offer(self, core: str) -> None:
        """Tasks of ``core`` became claimable: feed the workers that take them (its own or its fallback's)."""
        target = self._routing.route(core)
        if target is not None:
            self._feed(target)

    def _feed(self, core: str) -> None:
        """Start the feeder of ``core`` unless it runs, nobody waits, or its queues are known to be empty."""
        if core in self._feeding or not self._waiters.count(core):
            return
        if not any(self._ledger.maybe_claimable(source) for source in self._routing.sources(core)):
            return
        self._feeding[core] = 0
        self._busy += 1
        self.spawn(self._feeder, core)

    async def _feeder(self, core: str) -> None:
        try:
            while batch := self._waiters.take(core, self._cfg.claim_batch):
                sources = self._routing.sources(core)
                if not sources:  # isolated meanwhile: its workers wait until it is restored
                    self._waiters.put_back(core, batch)
                    return
                generations = [(source, self._ledger.generation[source]) for source in sources]
                now = self._now()
                requests = [build_claim_request(w.worker_id, w.lease_s) for w in batch for _ in range(w.want)]
                self._feeding[core] = len(batch)
                outcome = await self._store.claim(core, requests, now, also=sources[1:])
                self._feeding[core] = 0
                self._absorb(outcome.changes, now)
                unserved = self._hand_out(batch, outcome.value)
                if unserved:
                    self._waiters.put_back(core, unserved)
                    if all(self._ledger.generation[s] == g for s, g in generations):  # nothing new: park
                        for source, generation in generations:
                            self._ledger.empty_at[source] = generation
                        return
        finally:
            del self._feeding[core]
            self._done()

    def _hand_out(self, batch: list[Waiter], claimed: list[ClaimedTask]) -> list[Waiter]:
        """Give each waiter its share of ``claimed`` (in line order); return the waiters that got none."""
        at = 0
        for index, waiter in enumerate(batch):
            share = claimed[at : at + waiter.want]
            if not share:
                return batch[index:]
            at += len(share)
            self._deliver(waiter, share)
        return []

    def _deliver(self, waiter: Waiter, claimed: list[ClaimedTask]) -> None:
        if waiter.reply.pending:
            self._last_claim[waiter.core_id] = self._last_now
            waiter.reply.send(tuple(claimed) if waiter.many else claimed[0])
            return
        # The asker gave up while its claim was being written: give the tasks back at once.
        for task in claimed:
            self._busy += 1
            self.spawn(self._release, task)

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
            # Parked claims look again once per sweep even without news: a safety net against a missed
            # wake-up, and what finds tasks that other nodes queued once a shared (PostgreSQL) store is used.
            cores = self._waiters.cores()
            self._ledger.bump(cores)
            for core in cores:
                self._feed(core)
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
                self._offer(core)
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

    # --- cores (the monitor's recovery actions) ----------------------------------------------------------

    async def _isolate(
        self, reply: Reply[CoreState], core: str, fallback: str | None, reason: str | None
    ) -> None:
        async with self._core_lock:
            state = await self._store.isolate_core(core, fallback, reason, self._now())
            assert state.since is not None
            self._routing.isolate(Isolation(core, state.fallback, state.since, state.reason))
        self._ledger.bump([core])
        self._offer(core)  # its fallback's workers may take its tasks now
        reply.send(state)

    async def _restore(self, reply: Reply[CoreState], core: str, reason: str | None) -> None:
        async with self._core_lock:
            state = await self._store.restore_core(core, reason, self._now())
            self._routing.restore(core)
        adopted = self._routing.adopters(core)
        self._ledger.bump([core, *adopted])
        for source in (core, *adopted):
            self._offer(source)
        reply.send(state)

    async def _requeue_core(self, reply: Reply[int], core: str, reason: str | None) -> None:
        now = self._now()
        outcome = await self._store.requeue_core(core, reason, now)
        self._absorb(outcome.changes, now)
        reply.send(outcome.value)

    async def _core_health(self, reply: Reply[Any], core: str | None) -> None:
        loads = {load.core_id: load for load in await self._store.core_loads()}

        def view(c: str) -> CoreHealthView:
            return health_view(
                c, loads.get(c), self._routing.get(c), self._idle_workers(c), self._last_claim.get(c)
            )

        if core is not None:
            reply.send(view(core))
            return
        known = set(loads) | set(self._routing.cores()) | set(self._waiters.cores()) | set(self._last_claim)
        reply.send(tuple(view(c) for c in sorted(known)))

    # --- stats ---------------------------------------------------------------------------------------------

    async def _stats(self, reply: Reply[QueueStatsView]) -> None:
        now = self._now()
        stored = {c.core_id: c for c in await self._store.counts(now)}
        cores = sorted(set(stored) | set(self._waiters.cores()) | set(self._ledger.completions))
        reply.send(
            QueueStatsView(
                tuple(
                    core_stats(core, stored.get(core), self._idle_workers(core), self._ledger, now)
                    for core in cores
                ),
                now,
            )
        )


def _heartbeat_cmd(item: HeartbeatItem) -> HeartbeatCmd:
    if item.lease is not None:
        validate_lease(item.lease)
    if item.progress is not None:
        encode_json(item.progress, "progress")
    return build_heartbeat_cmd(item.task_id, item.lease_token, item.lease, item.progress)


def _report_cmd(item: ReportItem) -> ReportCmd:
    for field, value in (("result", item.result), ("progress", item.progress)):
        if value is not None:
            encode_json(value, field)
    return build_report_cmd(
        item.task_id, item.lease_token, item.status, item.result, item.error, item.progress
    )


def _checked(make: Callable[[Item], Command], items: Iterable[Item]) -> list[Command | DispatcherError]:
    """``make(item)`` for each item of a *Many message, or the domain error that refused it."""
    out: list[Command | DispatcherError] = []
    for item in items:  # one loop around the try, not a call per item
        try:
            out.append(make(item))
        except DispatcherError as error:
            out.append(error)
    return out


def _check_core(core: str, field: str) -> None:
    if not core or len(core) > 200:
        raise InvalidTask(f"{field} must be 1..200 characters")


def _check_limit(limit: int, most: int) -> None:
    if not 1 <= limit <= most:
        raise InvalidTask(f"limit must be within [1, {most}]")
