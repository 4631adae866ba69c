"""The lock manager actor: the lock table, made durable and driven by Trio time.

Write path (group commit). A handler changes the in-memory ``LockTable`` at once and queues the resulting
changes with the answer; one flusher task writes everything queued so far as a single op (one storage
batch, one thread hop) and answers after COMMIT. While a batch is in flight the next one accumulates, so
concurrent acquires share a transaction and no handler ever waits on the disk. Answers that changed nothing
(a repeated release, ``LockUnavailable``) still go through the flusher so that they are never sent before
the state they report is durable.

Why only one batch in flight: the askers a commit answers send their next request (a holder its release)
right after the answers go out, and ``_gather`` lets those into the next batch. Letting a second batch go
to storage while one commits was measured and lost: that batch leaves before the follow-ups arrive, so it
carries fewer requests, costs one more commit (fsync), and a holder's release then waits behind it.

Clocks. Deadlines live on ``trio.current_time()`` (monotonic, the actor's own clock); a background task
sleeps until the next one. They are persisted as wall-clock seconds, so after a restart each lease keeps
what was left of its TTL (a lease that ran out while the node was down expires at start-up, with its event).

A waiter is a kept ``reply``; if its asker gives up, ``on_abandon`` drops it from the queue. A grant whose
asker left before the answer could reach it is released at once (``lock.released`` with reason abandoned).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, assert_never

import trio

from actors.storage import Database
from runtime import Actor, DomainError, Reply

from . import store
from .messages import (
    Acquire,
    Extend,
    ExtendResult,
    GetLock,
    HolderInfo,
    LeaseGrant,
    ListLocks,
    LockInfo,
    LockMsg,
    LockStatistics,
    LockStats,
    Release,
    ReleaseResult,
)
from .table import Change, Granted, Lease, LockTable
from .waitqueue import Waiter

GATHER_ROUNDS = 1_000  # scheduling rounds the flusher waits, at most, for the mailbox to drain
GATHER_MAX = 1_000  # answers that make a batch big enough to write without waiting for more

Answer = tuple[Reply[Any], Any, Lease | None]  # reply, value or DomainError, lease to give back if abandoned


class LockManager(Actor[LockMsg]):
    """Leases with fencing tokens, fair wait queues and TTL expiry (see ``actors.locks``)."""

    def __init__(
        self,
        db: Database,
        *,
        aging: float = 1.0,
        max_ttl: float = 86_400.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._wall = wall_clock
        self._table = LockTable(aging=aging, max_ttl=max_ttl)
        self._waiting: dict[int, Reply[LeaseGrant]] = {}
        self._changes: list[Change] = []
        self._answers: list[Answer] = []
        self._work = trio.Event()
        self._busy = False
        self._cycle_done = trio.Event()
        self._timer_wake = trio.Event()
        self._timer_at = math.inf

    # --- lifecycle ------------------------------------------------------------------------------------
    async def on_start(self) -> None:
        """Migrate, reload held leases and fences, expire what ran out while down, start the tasks."""
        await self._db.migrate(store.COMPONENT, store.MIGRATIONS)
        stored = await self._db.read(store.load)
        offset = self._wall_offset()
        leases = [
            replace(lease, acquired_at=lease.acquired_at - offset, expires_at=lease.expires_at - offset)
            for lease in stored.leases
        ]
        self._table.restore(leases, stored.fences)
        self._table.expire_due(trio.current_time())
        self._flush_changes()
        self.spawn(self._flusher)
        self.spawn(self._expiry_timer)

    async def on_stop(self) -> None:
        """Let queued writes commit and their answers go out before the incarnation ends."""
        while self._changes or self._answers or self._busy:
            await self._cycle_done.wait()

    # --- messages -------------------------------------------------------------------------------------
    async def handle(self, msg: LockMsg) -> None:
        """Apply one request to the table; replies that depend on a write go out after its commit."""
        now = trio.current_time()
        match msg:
            case Acquire():
                self._acquire(msg, now)
            case Release(resource=resource, token=token, reply=reply):
                self._answer(
                    reply, lambda: ReleaseResult(resource, self._table.release(resource, token, now))
                )
            case Extend(resource=resource, token=token, by=by, reply=reply):
                self._answer(reply, lambda: self._extend(resource, token, by, now))
            case GetLock(resource=resource, reply=reply):
                self._table.expire_due(now)
                self._flush_changes()
                reply.send(self._info(resource, now))
            case ListLocks(owner=owner, prefix=prefix, limit=limit, reply=reply):
                self._table.expire_due(now)
                self._flush_changes()
                reply.send(self._list(owner, prefix, limit, now))
            case LockStats(reply=reply):
                reply.send(self._stats())
            case _:
                assert_never(msg)

    def _acquire(self, msg: Acquire, now: float) -> None:
        try:
            result = self._table.acquire(
                msg.resource, msg.owner, msg.ttl, now, priority=msg.priority, wait=msg.wait, mode=msg.mode
            )
        except DomainError as error:
            self._queue_answer(msg.reply, error)
            return
        if isinstance(result, Waiter):
            self._waiting[result.id] = msg.reply
            msg.reply.on_abandon(partial(self._abandon, result.id))
            self._flush_changes()
        else:
            self._queue_answer(msg.reply, _grant(result, 0.0), result)

    def _extend(self, resource: str, token: str, by: float, now: float) -> ExtendResult:
        lease = self._table.extend(resource, token, by, now)
        return ExtendResult(resource, lease.fence, lease.expires_at - now)

    def _answer(self, reply: Reply[Any], compute: Callable[[], Any]) -> None:
        try:
            value = compute()
        except DomainError as error:
            value = error
        self._queue_answer(reply, value)

    def _abandon(self, waiter_id: int) -> None:
        """The asker of a queued acquire gave up: leave nothing behind."""
        self._waiting.pop(waiter_id, None)
        if self._table.cancel(waiter_id, trio.current_time()):
            self._flush_changes()

    # --- the write path -------------------------------------------------------------------------------
    def _queue_answer(self, reply: Reply[Any], value: Any, lease: Lease | None = None) -> None:
        self._answers.append((reply, value, lease))
        self._flush_changes()

    def _flush_changes(self) -> None:
        """Move the table's new changes to the flusher; answer waiters that were granted."""
        changes = self._table.drain()
        for change in changes:
            if isinstance(change, Granted):
                reply = self._waiting.pop(change.waiter_id, None)
                if reply is not None:
                    self._answers.append((reply, _grant(change.lease, change.waited), change.lease))
                if change.lease.expires_at < self._timer_at:
                    self._timer_wake.set()
        self._changes.extend(changes)
        if self._changes or self._answers:
            self._work.set()

    async def _flusher(self) -> None:
        while True:
            await self._work.wait()
            self._busy = True
            await self._gather()
            self._work = trio.Event()
            changes, self._changes = self._changes, []
            answers, self._answers = self._answers, []
            if changes:
                # An error here crashes the actor: the runtime fails every held reply, and the restart
                # reloads the last committed state.
                await self._db.write(
                    partial(store.apply_changes, changes=changes, wall_offset=self._wall_offset())
                )
            self._deliver(answers)
            self._busy = False
            self._cycle_done.set()
            self._cycle_done = trio.Event()

    async def _gather(self) -> None:
        """Let the askers answered by the last commit send again, and the actor handle it, before writing.

        Without this, requests split into two groups that alternate commits (one commits while the other
        piles up), so each waits about two commits; gathering keeps one group and one commit per request.
        """
        await trio.lowlevel.checkpoint()
        for _ in range(GATHER_ROUNDS):
            if self.ref.statistics().depth == 0 or len(self._answers) >= GATHER_MAX:
                return
            await trio.lowlevel.checkpoint()

    def _deliver(self, answers: list[Answer]) -> None:
        now = trio.current_time()
        for reply, value, lease in answers:
            if reply.abandoned:
                if lease is not None and self._table.lease(lease.token) is not None:
                    self._table.release(lease.resource, lease.token, now, abandoned=True)
                continue
            if isinstance(value, BaseException):
                reply.fail(value)
            else:
                reply.send(value)
        self._flush_changes()

    async def _expiry_timer(self) -> None:
        while True:
            self._timer_wake = trio.Event()
            deadline = self._table.next_deadline()
            self._timer_at = math.inf if deadline is None else deadline
            with trio.move_on_at(self._timer_at):
                await self._timer_wake.wait()
            self._table.expire_due(trio.current_time())
            self._flush_changes()

    def _wall_offset(self) -> float:
        """Add to a table (Trio) time to get unix seconds."""
        return self._wall() - trio.current_time()

    # --- read-only answers ----------------------------------------------------------------------------
    def _info(self, resource: str, now: float) -> LockInfo:
        holders = tuple(
            HolderInfo(h.owner, h.fence, h.mode, max(0.0, h.expires_at - now))
            for h in sorted(self._table.holders(resource), key=lambda h: h.fence)
        )
        return LockInfo(
            resource, holders, self._table.waiter_count(resource), self._table.last_fence(resource)
        )

    def _list(self, owner: str | None, prefix: str | None, limit: int, now: float) -> tuple[LockInfo, ...]:
        found: list[LockInfo] = []
        if limit < 1:
            return ()
        for resource in sorted(self._table.held_resources()):
            if prefix is not None and not resource.startswith(prefix):
                continue
            if owner is not None and all(h.owner != owner for h in self._table.holders(resource)):
                continue
            found.append(self._info(resource, now))
            if len(found) >= limit:
                break
        return tuple(found)

    def _stats(self) -> LockStatistics:
        c = self._table.counters
        return LockStatistics(
            acquisitions=c.acquisitions,
            contended=c.contended,
            unavailable=c.unavailable,
            releases=c.releases,
            extensions=c.extensions,
            expiries=c.expiries,
            refused=c.refused,
            abandoned=c.abandoned,
            held=self._table.lease_count(),
            waiting=self._table.waiter_count(),
            wait_buckets=c.cumulative_buckets(),
            wait_sum=c.wait_sum,
            wait_count=sum(c.wait_counts),
        )


def _grant(lease: Lease, waited: float) -> LeaseGrant:
    ttl = lease.expires_at - lease.acquired_at
    return LeaseGrant(lease.resource, lease.owner, lease.token, lease.fence, lease.mode, ttl, waited)
