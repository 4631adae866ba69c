"""Closed-loop pacing between groups of one load process: producers wait for consumers.

A full-cycle scenario has dispatchers and workers. Left alone, dispatchers that outrun the workers fill
the queue without bound, and part of the node's CPU goes to tasks the run never completes: the figure
then is neither the cycle's capacity nor a steady state. With a `Backlog`, a dispatcher reserves room
for the tasks it is about to send and the workers give it back as they complete tasks, so the queue stays
between zero and `limit` tasks — deep enough that every claim is full, bounded so the run measures the
steady state.

Backlogs live in the load process (`backlog(name, limit)` returns the same object to every client of
the process), so pacing needs the dispatchers and the workers in one process (`--processes 1`).
"""

from __future__ import annotations

import trio

__all__ = ["Backlog", "backlog"]


class Backlog:
    """Tasks dispatched and not yet completed, at most `limit` of them (a single call may overshoot:
    a call bigger than `limit` waits for an empty backlog)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a backlog limit must be >= 1")
        self.limit = limit
        self.outstanding = 0
        self._changed = trio.Event()

    async def reserve(self, n: int, *, patience: float) -> None:
        """Wait until `n` more tasks fit, then count them; after `patience` seconds count them anyway.

        The patience bounds the wait when the workers have stopped (the end of a run): the call goes
        ahead rather than hanging until the load generator's hard deadline.
        """
        with trio.move_on_after(patience):
            while self.outstanding > 0 and self.outstanding + n > self.limit:
                await self._changed.wait()
        self.outstanding += n

    def release(self, n: int) -> None:
        """`n` reserved tasks completed (or were never created: a failed dispatch gives its room back)."""
        self.outstanding = max(0, self.outstanding - n)
        self._changed.set()
        self._changed = trio.Event()


_BACKLOGS: dict[str, Backlog] = {}


def backlog(name: str, limit: int) -> Backlog:
    """This process's backlog called `name` (made on first use; one load plan per process)."""
    found = _BACKLOGS.get(name)
    if found is None:
        found = _BACKLOGS[name] = Backlog(limit)
    return found
