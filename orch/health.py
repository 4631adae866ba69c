"""Health of a node: per-component states, the aggregate, and the supervisor tree seen as components."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import trio

from runtime import ChildState, ChildStatus, SupervisorStatus

__all__ = [
    "ComponentHealth",
    "HealthProbe",
    "HealthReport",
    "OverallStatus",
    "ProbeRound",
    "SharedProbes",
    "TotalsSource",
    "overall",
    "supervisor_components",
]

ComponentStatus = Literal["up", "degraded", "down"]
OverallStatus = Literal["healthy", "degraded", "unhealthy", "shutting_down"]


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    """One component's state for `/health`: up, degraded (working, e.g. restarting) or down."""

    status: ComponentStatus
    detail: Mapping[str, Any] = field(default_factory=dict)


HealthProbe = Callable[[], Awaitable[ComponentHealth]]
TotalsSource = Callable[[], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The `/health` body. `ok` is False (503) when a component is down or the node is draining."""

    status: OverallStatus
    timestamp: float
    version: str
    uptime: float
    components: Mapping[str, ComponentHealth]
    totals: Mapping[str, Any]

    @property
    def ok(self) -> bool:
        """True when the node should receive traffic."""
        return self.status in ("healthy", "degraded")

    def to_json(self) -> dict[str, Any]:
        """The JSON document."""
        return {
            "status": self.status,
            "timestamp": datetime.fromtimestamp(self.timestamp, UTC).isoformat(timespec="milliseconds"),
            "version": self.version,
            "uptime_seconds": round(self.uptime, 3),
            "components": {
                name: {"status": c.status, **c.detail} for name, c in sorted(self.components.items())
            },
            "totals": dict(self.totals),
        }


@dataclass(frozen=True, slots=True)
class ProbeRound:
    """What one run of every probe and totals source found."""

    components: Mapping[str, ComponentHealth]
    totals: Mapping[str, Any]


class SharedProbes:
    """Runs a probe round at most once per `max_age` seconds; callers arriving meanwhile share it.

    A `/health` flood would otherwise queue one database read (a thread round trip) per request.
    """

    def __init__(self, run: Callable[[], Awaitable[ProbeRound]], *, max_age: float) -> None:
        self._run = run
        self.max_age = max_age
        self._last: ProbeRound | None = None
        self._last_at = 0.0
        self._generation = 0
        self._inflight: trio.Event | None = None
        self.rounds = 0

    def invalidate(self) -> None:
        """Forget the last round (the set of probes changed): the next caller runs a fresh one."""
        self._last = None
        self._generation += 1

    def _fresh(self) -> ProbeRound | None:
        if self._last is not None and trio.current_time() - self._last_at < self.max_age:
            return self._last
        return None

    async def get(self) -> ProbeRound:
        """The last round if it is younger than `max_age`, else the round in flight, else a new one."""
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        pending = self._inflight
        if pending is not None:
            await pending.wait()
            fresh = self._fresh()
            # The leader was cancelled or the probes changed meanwhile: run our own round.
            return fresh if fresh is not None else await self._run()
        done = self._inflight = trio.Event()
        generation, started = self._generation, trio.current_time()
        try:
            found = await self._run()
            self.rounds += 1
            if generation == self._generation:
                self._last, self._last_at = found, started
            return found
        finally:
            self._inflight = None
            done.set()


def overall(components: Mapping[str, ComponentHealth], *, draining: bool) -> OverallStatus:
    """Aggregate: any down -> unhealthy, any degraded -> degraded; draining wins over everything."""
    if draining:
        return "shutting_down"
    states = {c.status for c in components.values()}
    if "down" in states:
        return "unhealthy"
    return "degraded" if "degraded" in states else "healthy"


_STATE: dict[ChildState, ComponentStatus] = {
    ChildState.RUNNING: "up",
    ChildState.STARTING: "degraded",
    ChildState.BACKING_OFF: "degraded",
    ChildState.STOPPED: "down",
    ChildState.FAILED: "down",
}


def supervisor_components(status: SupervisorStatus) -> dict[str, ComponentHealth]:
    """Every worker of the tree as a component (nested supervisors are flattened)."""
    found: dict[str, ComponentHealth] = {}
    for child in status.children:
        if child.supervisor is not None:
            found.update(supervisor_components(child.supervisor))
        else:
            found[child.id] = ComponentHealth(_STATE[child.state], _child_detail(child))
    return found


def _child_detail(child: ChildStatus) -> dict[str, Any]:
    detail: dict[str, Any] = {"state": child.state.value, "restarts": child.restarts}
    if child.mailbox_depth is not None:
        detail["mailbox"] = {"depth": child.mailbox_depth, "capacity": child.mailbox_capacity}
    if child.last_failure is not None:
        detail["last_failure"] = {"type": child.last_failure.type, "at": child.last_failure.at}
    return detail
