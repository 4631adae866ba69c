"""Ordered, batched persistence for the security actor, and sampling of noisy audit events.

State changes must reach the database in the order the actor made them (two upserts of the same user row
committed in the wrong order would resurrect stale state), and the actor must never wait for a commit
while handling a message. So changes go into one FIFO drained by one background task: everything queued
goes into a single write op (one group-commit slot), then each change's `done` callback answers its asker.
Audit entries that are not state changes ride along but are bounded: under a flood they are dropped and
counted (the count is itself audited) rather than slowing authorisation down.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable

import trio

from actors.security.ratelimit import GcraLimiter, RatePolicy
from actors.security.store import AuditEntry, Change, SecurityStore
from runtime import ActorCrashed

MAX_BATCH = 512
ACTOR_NAME = "security"

Abort = Callable[[BaseException], object]


_Entry = tuple[Change, Callable[[], object] | None, Abort | None, bool]


class Committer:
    """FIFO of changes applied by `run` in batches; see the module docstring."""

    def __init__(
        self, store: SecurityStore, clock: Callable[[], float], *, audit_capacity: int = 10_000
    ) -> None:
        self._store = store
        self._clock = clock
        # (change, done callback, abort callback, is a bounded audit-only entry)
        self._queue: deque[_Entry] = deque()
        self._in_flight: list[_Entry] = []
        self._wake = trio.Event()
        self._audit_pending = 0
        self._audit_capacity = audit_capacity
        self.dropped = 0

    def submit(
        self, change: Change, done: Callable[[], object] | None = None, *, abort: Abort | None = None
    ) -> None:
        """Queue a state change; `done` runs after it committed. `abort` runs (with ActorCrashed) instead
        if `run` ends first: the commit failed or the actor crashed. (Askers whose reply the actor holds
        hear of a crash from the runtime; `abort` is for those who hold a `Receipt`.)"""
        self._queue.append((change, done, abort, False))
        self._wake.set()

    def audit(self, entry: AuditEntry) -> None:
        """Queue an audit-only entry; dropped (and counted) when too many are pending."""
        if self._audit_pending >= self._audit_capacity:
            self.dropped += 1
            return
        self._audit_pending += 1
        self._queue.append((Change(audit=(entry,)), None, None, True))
        self._wake.set()

    @property
    def pending(self) -> int:
        """Changes queued and not yet committed."""
        return len(self._queue)

    async def run(self) -> None:
        """Drain forever: the one task that writes (a background task of the actor)."""
        try:
            while True:
                await self._wake.wait()
                # One more scheduling round lets the actor finish the burst it is handling (it yields
                # every few dozen messages), so one write carries all of it: half the round trips per webhook.
                await trio.lowlevel.checkpoint()
                self._wake = trio.Event()
                await self._flush()
        except BaseException as exc:
            self._abort_pending(exc)
            raise

    def _abort_pending(self, exc: BaseException) -> None:
        """Tell every uncommitted change's `abort` that it never will be (run is ending: crash or stop)."""
        pending, self._in_flight = [*self._in_flight, *self._queue], []
        self._queue.clear()
        error = ActorCrashed(ACTOR_NAME, None if isinstance(exc, trio.Cancelled) else exc)
        for _, _, abort, _ in pending:
            if abort is not None:
                abort(error)

    async def drain(self) -> None:
        """Wait until everything queued before this call is durable (needs `run` to be running)."""
        committed = trio.Event()
        self.submit(Change(), committed.set)
        await committed.wait()

    async def _flush(self) -> None:
        # A failed commit propagates: the actor crashes, its askers get ActorCrashed, the restart reloads.
        while self._queue:
            if self.dropped:
                lost, self.dropped = self.dropped, 0
                entry = AuditEntry(self._clock(), "audit_dropped", data={"count": lost})
                self._queue.append((Change(audit=(entry,)), None, None, False))
            batch = self._in_flight = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
            self._audit_pending -= sum(1 for *_, bounded in batch if bounded)
            await self._store.apply(*(change for change, *_ in batch))
            self._in_flight = []
            for _, done, _, _ in batch:
                if done is not None:
                    done()


class AuditSampler:
    """Lets at most `per_minute` events of one (type, key) through; counts the rest until the next one."""

    def __init__(self, per_minute: int = 10, max_keys: int = 50_000) -> None:
        self._policy = RatePolicy("audit", limit=per_minute, window=60.0)
        self._limiter = GcraLimiter(max_keys)
        self._suppressed: dict[tuple[str, Hashable], int] = {}
        self._max_keys = max_keys

    def admit(self, type: str, key: Hashable, now: float) -> int | None:
        """None to suppress this event; otherwise how many like it were suppressed before it."""
        slot = (type, key)
        if not self._limiter.take(self._policy, slot, now).allowed:
            if len(self._suppressed) >= self._max_keys:
                self._suppressed.clear()
            self._suppressed[slot] = self._suppressed.get(slot, 0) + 1
            return None
        return self._suppressed.pop(slot, 0)
