"""Closed-loop pacing between groups of one load process: producers wait for consumers.

A full-cycle scenario has dispatchers and workers. Left alone, dispatchers that outrun the workers fill
the queue without bound, and part of the node's CPU goes to tasks the run never completes: the figure
then is neither the cycle's capacity nor a steady state. With a `Backlog`, a dispatcher reserves room
for the tasks it is about to send and the workers give it back as they complete tasks, so the queue stays
between zero and `limit` tasks — deep enough that every claim is full, bounded so the run measures the
steady state.

Backlogs live in the load process (`backlog(name, limit)` returns the same object to every client of
the process), so pacing needs the dispatchers and the workers in one process (`--processes 1`). Each run
(and each warm-up) is a load process of its own against the same node, so a new backlog first counts
what earlier ones left on the node unfinished (`seed_once`): starting from zero, every run added up to a
backlog's worth of tasks to the queue, and the later runs measured a queue several times `limit` deep.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

import trio

__all__ = ["Backlog", "backlog"]


class Backlog:
    """Tasks dispatched and not yet completed, at most `limit` of them (a single call may overshoot:
    a call bigger than `limit` waits for an empty backlog; so does one whose patience ran out)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a backlog limit must be >= 1")
        self.limit = limit
        self.outstanding = 0
        self._changed = trio.Event()
        self._waiting: deque[object] = deque()  # reservations in arrival order
        self._last_completion: float | None = None  # trio time of the last release
        self._seeded: trio.Event | None = None  # set once the first `seed_once` has its count

    async def seed_once(self, count_unfinished: Callable[[], Awaitable[int]]) -> None:
        """Add the tasks still unfinished on the target (``count_unfinished``, asked by the first caller
        only; the others wait for its answer)."""
        if self._seeded is not None:
            await self._seeded.wait()
            return
        self._seeded = trio.Event()
        try:
            self.outstanding += await count_unfinished()
        finally:
            self._seeded.set()

    async def reserve(self, n: int, *, patience: float) -> None:
        """Wait until `n` more tasks fit, then count them; if no task completes for `patience` seconds
        while waiting, count them anyway.

        Reservations are served in arrival order: a dispatcher whose last call just ended cannot take the
        room freed for one that has been waiting (that left some dispatchers waiting 10 s while others
        went round after round). The patience bounds the wait when the workers have stopped (the end of
        a run): every waiter then goes ahead together, rather than hanging until the load generator's hard
        deadline. It restarts with every completion: counted from the start of the wait, it let waiting
        dispatchers through while the workers were busy, and the queue grew past `limit` all run long.
        """
        ticket = object()
        self._waiting.append(ticket)
        began = trio.current_time()
        try:
            while self._waiting[0] is not ticket or not self._fits(n):
                quiet_since = began if self._last_completion is None else max(began, self._last_completion)
                changed = self._changed
                with trio.move_on_at(quiet_since + patience) as waiting:
                    await changed.wait()
                if waiting.cancelled_caught:
                    break  # nothing completed for `patience` seconds: the workers have stopped
            self.outstanding += n
        finally:
            self._waiting.remove(ticket)
            self._notify()  # the next in line may fit now

    def release(self, n: int) -> None:
        """`n` reserved tasks completed (or were never created: a failed dispatch gives its room back)."""
        self.outstanding = max(0, self.outstanding - n)
        self._last_completion = trio.current_time()
        self._notify()

    def _fits(self, n: int) -> bool:
        return self.outstanding == 0 or self.outstanding + n <= self.limit

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


_BACKLOGS: dict[str, Backlog] = {}


def backlog(name: str, limit: int) -> Backlog:
    """This process's backlog called `name` (made on first use; one load plan per process)."""
    found = _BACKLOGS.get(name)
    if found is None:
        found = _BACKLOGS[name] = Backlog(limit)
    return found
