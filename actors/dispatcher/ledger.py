"""The actor's in-memory bookkeeping, kept in step with the store by the `Change`s of committed writes.

It is never the source of truth for a task (the store is): it only answers "how many are queued ahead",
"when is the next delayed task or retry due", "how fast does this core complete tasks", and "did anything
become claimable since I last found the queue empty" (``generation``), without a database round trip.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Callable, Iterable

from .lifecycle import ends_attempt
from .messages import DispatchAccepted, TaskStatus, build_accepted
from .policy import RateMeter, estimate_start
from .store import Backlog, Change, Dispatched, Outcome

S = TaskStatus


class Ledger:
    """Queue depth per core and priority, due times, rates, and availability generations."""

    def __init__(self) -> None:
        self.queued: defaultdict[str, defaultdict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.delayed: list[tuple[float, str]] = []  # heap of (not_before, core) of queued tasks not yet due
        self.next_retry: float = math.inf
        self.generation: defaultdict[str, int] = defaultdict(int)
        self.empty_at: dict[str, int] = {}  # core -> generation at which a claim found nothing due
        self.completions: defaultdict[str, RateMeter] = defaultdict(RateMeter)
        self.claims: defaultdict[str, RateMeter] = defaultdict(RateMeter)

    def load(self, backlog: Backlog) -> None:
        """Start from the stored backlog (after a start or restart)."""
        for core, by_priority in backlog.queued.items():
            for priority, n in by_priority.items():
                self.queued[core][priority] = n
        self.delayed = [(nb, core) for core, nb in backlog.delayed]
        heapq.heapify(self.delayed)
        self.next_retry = math.inf if backlog.next_retry_due is None else backlog.next_retry_due

    def apply(self, changes: Iterable[Change], now: float) -> set[str]:
        """Account for committed changes; returns the cores where a task became claimable now."""
        available: set[str] = set()
        claims: dict[str, int] = {}  # core -> claims among the changes, added to its meter once
        completions: dict[str, int] = {}
        queued, delayed = self.queued, self.delayed
        for c in changes:  # `_count` inlined: a call per change was a tenth of a report's ledger cost
            old, new, core = c.old, c.new, c.core_id
            if old is S.QUEUED:
                queued[core][c.priority] -= 1
            if new is S.CLAIMED:
                claims[core] = claims.get(core, 0) + 1
                continue
            if old is not None and ends_attempt(old, new):
                completions[core] = completions.get(core, 0) + 1
            if new is S.RETRYING:
                self.next_retry = min(self.next_retry, c.not_before)
            elif new is S.QUEUED:
                queued[core][c.priority] += 1
                if c.not_before > now:
                    heapq.heappush(delayed, (c.not_before, core))
                else:
                    available.add(core)
        self._add_rates(claims, completions, now)
        self.bump(available)
        return available

    def bump(self, cores: Iterable[str]) -> None:
        """Note that tasks of ``cores`` became claimable."""
        for core in cores:
            self.generation[core] += 1

    def _add_rates(self, claims: dict[str, int], completions: dict[str, int], now: float) -> None:
        for core, n in claims.items():
            self.claims[core].add(now, n)
        for core, n in completions.items():
            self.completions[core].add(now, n)

    def _count(self, c: Change, now: float, claims: dict[str, int], completions: dict[str, int]) -> bool:
        """Account for one change, its claim or completion counted into ``claims`` / ``completions`` (per
        core, added to the rate meters once per batch); true if it made a task of its core claimable now."""
        old, new, core = c.old, c.new, c.core_id
        if old is S.QUEUED:
            self.queued[core][c.priority] -= 1
        if new is S.CLAIMED:
            claims[core] = claims.get(core, 0) + 1
        elif old is not None and ends_attempt(old, new):
            completions[core] = completions.get(core, 0) + 1
        if new is S.RETRYING:
            self.next_retry = min(self.next_retry, c.not_before)
        if new is not S.QUEUED:
            return False
        self.queued[core][c.priority] += 1
        if c.not_before > now:
            heapq.heappush(self.delayed, (c.not_before, core))
            return False
        return True

    def accept(
        self, outcome: Outcome[list[Dispatched]], now: float, idle_workers: Callable[[str], int]
    ) -> tuple[list[DispatchAccepted], set[str]]:
        """Account for a dispatch task by task, so each learns how many were queued ahead of it and
        when it should start; returns the answers and the cores where tasks became claimable."""
        changes = iter(outcome.changes)  # exactly one per created task, in order
        available: set[str] = set()
        accepted: list[DispatchAccepted] = []
        capacity: dict[str, tuple[int, float]] = {}  # core -> (idle workers, completion rate)
        # core -> {priority: `ahead(core, priority)`} for the priorities seen so far, kept up to date as
        # the created tasks are queued (a sum over the core's priorities per task cost ~7,000 instructions)
        aheads: dict[str, dict[int, int]] = {}
        claims: dict[str, int] = {}  # (a dispatch's changes neither claim nor complete: empty)
        completions: dict[str, int] = {}
        for item in outcome.value:
            task = item.task
            core, priority = task.core_id, task.priority
            known = aheads.get(core)
            if known is None:
                known = aheads[core] = {}
            ahead = known.get(priority)
            if ahead is None:
                ahead = known[priority] = self.ahead(core, priority)
            if item.created:
                change = next(changes)
                if self._count(change, now, claims, completions):
                    available.add(core)
                if change.new is S.QUEUED:  # one more queued at change.priority: ahead of it and below
                    for seen in known:
                        if seen <= change.priority:
                            known[seen] += 1
            elif task.status is S.QUEUED:
                ahead -= 1  # it counts itself
            eta: float | None = None
            if task.status is S.QUEUED:
                if core not in capacity:
                    capacity[core] = (idle_workers(core), self.completions[core].rate(now))
                eta = estimate_start(now, ahead, *capacity[core])
                if eta is not None:
                    eta = max(eta, task.not_before)
            accepted.append(build_accepted(task, item.created, max(ahead, 0), eta))
        self._add_rates(claims, completions, now)
        self.bump(available)
        return accepted, available

    def pop_due(self, now: float) -> set[str]:
        """Cores whose delayed tasks became due by ``now`` (their generation moves on)."""
        cores: set[str] = set()
        while self.delayed and self.delayed[0][0] <= now:
            cores.add(heapq.heappop(self.delayed)[1])
        self.bump(cores)
        return cores

    def next_wakeup(self) -> float:
        """The earliest due time of a delayed task or a retry (inf if none)."""
        first_delayed = self.delayed[0][0] if self.delayed else math.inf
        return min(first_delayed, self.next_retry)

    def ahead(self, core_id: str, priority: int) -> int:
        """Queued tasks of ``core_id`` with at least ``priority`` (aging ignored: an estimate)."""
        total = 0
        for p, n in self.queued[core_id].items():  # a plain loop: a generator costs more than these few
            if p >= priority:
                total += n
        return total

    def maybe_claimable(self, core_id: str) -> bool:
        """False only if a claim found nothing due and nothing became claimable since."""
        return self.empty_at.get(core_id) != self.generation[core_id]
