"""Which workers may take which core's tasks, given the isolated cores (the actor's copy of the stored set).

* a core that is not isolated is claimed by its own workers, plus those isolated cores it is the fallback
  of (``sources``);
* an isolated core's own workers get nothing;
* an isolated core's tasks go to its fallback's workers, unless it has none or the fallback is isolated
  too (fallbacks are not chained), in which case they wait (``route``).
"""

from __future__ import annotations

from collections.abc import Iterable

from .messages import CoreHealthView
from .store import CoreLoad, Isolation


class CoreRouting:
    """The isolated cores, kept in step with the store (loaded at start, updated after each commit)."""

    def __init__(self) -> None:
        self._isolated: dict[str, Isolation] = {}

    def load(self, isolations: Iterable[Isolation]) -> None:
        """Start from the stored isolations."""
        self._isolated = {i.core_id: i for i in isolations}

    def isolate(self, isolation: Isolation) -> None:
        """Note a committed isolation."""
        self._isolated[isolation.core_id] = isolation

    def restore(self, core_id: str) -> None:
        """Note a committed restore."""
        self._isolated.pop(core_id, None)

    def get(self, core_id: str) -> Isolation | None:
        """The isolation of ``core_id``, if it is isolated."""
        return self._isolated.get(core_id)

    def cores(self) -> list[str]:
        """The isolated cores."""
        return list(self._isolated)

    def sources(self, core_id: str) -> list[str]:
        """The cores whose tasks a worker of ``core_id`` may claim (empty when it is isolated)."""
        if core_id in self._isolated:
            return []
        return [core_id, *self.adopters(core_id)]

    def adopters(self, core_id: str) -> list[str]:
        """Isolated cores whose fallback is ``core_id``."""
        return [i.core_id for i in self._isolated.values() if i.fallback == core_id]

    def route(self, core_id: str) -> str | None:
        """The core whose workers take ``core_id``'s tasks now; None while they must wait."""
        isolation = self._isolated.get(core_id)
        if isolation is None:
            return core_id
        fallback = isolation.fallback
        if fallback is None or fallback in self._isolated:
            return None
        return fallback


def health_view(
    core_id: str,
    load: CoreLoad | None,
    isolation: Isolation | None,
    waiting: int,
    last_claim_at: float | None,
) -> CoreHealthView:
    """One core's health from its stored load, its isolation and the actor's live figures."""
    return CoreHealthView(
        core_id=core_id,
        queued=load.queued if load else 0,
        claimed=load.claimed if load else 0,
        running=load.running if load else 0,
        isolated=isolation is not None,
        fallback=isolation.fallback if isolation else None,
        isolated_since=isolation.since if isolation else None,
        isolation_reason=isolation.reason if isolation else None,
        waiting_workers=waiting,
        last_claim_at=last_claim_at,
        last_heartbeat_at=load.last_heartbeat_at if load else None,
        stalest_heartbeat_at=load.stalest_heartbeat_at if load else None,
    )
