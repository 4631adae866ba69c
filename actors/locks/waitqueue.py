"""The wait queue of one resource: priority with aging, then FIFO. Pure (no clock of its own, no I/O).

Ordering rule. A waiter of priority ``p`` enqueued at time ``t`` is ranked by its *virtual arrival*
``v = t - p * aging``: earliest virtual arrival first, ties by enqueue order (FIFO). Each priority step is
worth ``aging`` seconds of waiting, so higher priority goes first and, within a priority, FIFO holds.
Because ``v`` never changes after enqueue, the order is a plain heap: no periodic re-scoring.

Aging bound. A request of priority ``q`` enqueued at ``t`` overtakes a waiter ``w`` (priority ``p``,
enqueued ``t0``) only if ``t - q * aging < t0 - p * aging``, i.e. ``t < t0 + (q - p) * aging``. With
priorities capped at ``MAX_PRIORITY``, nothing enqueued after ``t0 + (MAX_PRIORITY - p) * aging`` is ever
served before ``w``. So ``w`` waits at most for the waiters ranked ahead of it at ``t0`` plus those arriving
within that window: with ``n0`` ahead at ``t0``, arrivals at rate ``r`` and leases held at most ``H``
seconds, an exclusive waiter is granted within ``(n0 + r * (MAX_PRIORITY - p) * aging + 1) * H`` seconds.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

from .messages import LockMode

MIN_PRIORITY = -100
MAX_PRIORITY = 100


@dataclass(frozen=True, slots=True)
class Waiter:
    """A queued acquire. ``id`` is unique per table and increases with enqueue order."""

    id: int
    resource: str
    owner: str
    mode: LockMode
    ttl: float
    priority: int
    enqueued_at: float


class WaitQueue:
    """Waiters of one resource, best first; removal by id is O(1) (lazy, compacted)."""

    __slots__ = ("_aging", "_heap", "_live")

    def __init__(self, aging: float) -> None:
        self._aging = aging
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, Waiter] = {}

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[Waiter]:
        """The waiters in rank order (O(n log n); for inspection, not the hot path)."""
        return (self._live[i] for _, i in sorted(self._heap) if i in self._live)

    def rank_key(self, waiter: Waiter) -> tuple[float, int]:
        """The waiter's position key: virtual arrival, then enqueue order."""
        return (waiter.enqueued_at - waiter.priority * self._aging, waiter.id)

    def push(self, waiter: Waiter) -> None:
        """Enqueue ``waiter`` at its rank."""
        self._live[waiter.id] = waiter
        heapq.heappush(self._heap, self.rank_key(waiter))

    def peek(self) -> Waiter | None:
        """The best-ranked waiter, or ``None`` if the queue is empty."""
        self._drop_dead_head()
        return self._live[self._heap[0][1]] if self._heap else None

    def pop(self) -> Waiter:
        """Remove and return the best-ranked waiter (``IndexError`` if empty)."""
        self._drop_dead_head()
        _, waiter_id = heapq.heappop(self._heap)
        return self._live.pop(waiter_id)

    def remove(self, waiter_id: int) -> bool:
        """Drop a waiter wherever it is; False if it is not queued here."""
        if self._live.pop(waiter_id, None) is None:
            return False
        if len(self._heap) > 2 * len(self._live) + 16:
            self._heap = [key for key in self._heap if key[1] in self._live]
            heapq.heapify(self._heap)
        return True

    def _drop_dead_head(self) -> None:
        while self._heap and self._heap[0][1] not in self._live:
            heapq.heappop(self._heap)
