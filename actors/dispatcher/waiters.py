"""Long-poll claimers waiting for a task, per core, first come first served."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from runtime import Reply


@dataclass(frozen=True, slots=True)
class Waiter:
    """One parked ``Claim`` (``want`` 1, ``many`` false) or ``ClaimMany`` (up to ``want`` tasks)."""

    key: int
    core_id: str
    worker_id: str
    lease_s: float
    reply: Reply[Any]
    want: int = 1
    many: bool = False


class Waiters:
    """Parked claims per core. An asker that gives up is dropped at once (``Reply.on_abandon``)."""

    def __init__(self) -> None:
        self._by_core: dict[str, dict[int, Waiter]] = {}
        self._keys = itertools.count()

    def park(
        self,
        core_id: str,
        worker_id: str,
        lease_s: float,
        reply: Reply[Any],
        *,
        want: int = 1,
        many: bool = False,
    ) -> None:
        """Queue a claim (for up to ``want`` tasks) at the back of its core's line."""
        waiter = Waiter(next(self._keys), core_id, worker_id, lease_s, reply, want, many)
        self._by_core.setdefault(core_id, {})[waiter.key] = waiter
        reply.on_abandon(lambda: self._drop(waiter))

    def take(self, core_id: str, limit: int) -> list[Waiter]:
        """Remove and return waiters of ``core_id`` from the front of the line, wanting up to ``limit``
        tasks in all (at least one waiter, whatever it wants)."""
        line = self._by_core.get(core_id)
        if not line:
            return []
        taken: list[Waiter] = []
        wanted = 0
        for waiter in line.values():
            if taken and wanted + waiter.want > limit:
                break
            taken.append(waiter)
            wanted += waiter.want
        for waiter in taken:
            del line[waiter.key]
        if not line:
            del self._by_core[core_id]
        return taken

    def put_back(self, core_id: str, waiters: Iterable[Waiter]) -> None:
        """Return waiters that got no task to the front of the line, in their order (skipping gone ones)."""
        front = {w.key: w for w in waiters if w.reply.pending}
        if not front:
            return
        line = self._by_core.get(core_id, {})
        front.update(line)
        self._by_core[core_id] = front

    def count(self, core_id: str) -> int:
        """How many claims wait for ``core_id``."""
        return len(self._by_core.get(core_id, ()))

    def cores(self) -> list[str]:
        """Cores with waiting claims."""
        return list(self._by_core)

    def _drop(self, waiter: Waiter) -> None:
        line = self._by_core.get(waiter.core_id)
        if line is not None and line.pop(waiter.key, None) is not None and not line:
            del self._by_core[waiter.core_id]
