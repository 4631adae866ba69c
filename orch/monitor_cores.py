"""Cores as the monitor sees and heals them, through the dispatcher's core messages.

`DispatcherCores` is the recovery port's `CoreControl`: re-queue a core's held work (`RequeueCore`), take it
out of rotation (`IsolateCore`, optionally to a fallback core) and put it back (`RestoreCore`).
`core_series` turns the `ListCores` figures of the node's state snapshot (polled by
`orch.domain_gauges.StateRefresher`, read by `orch.monitor_samples.NodeSamples`) into sample series:

- ``core_heartbeat_age_seconds{core}``: seconds since the stalest worker holding one of the core's tasks
  last showed a sign of life (present only while the core has tasks claimed or running);
- ``core_isolated{core}``: 1 while the core is out of rotation;
- ``core_waiting_workers{core}``: workers long-polling for its tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from actors.dispatcher.messages import (
    CoreHealthView,
    CoreState,
    DispatcherMsg,
    IsolateCore,
    RequeueCore,
    RestoreCore,
)
from actors.monitor.series import series_key
from runtime import ActorRef

if TYPE_CHECKING:
    from orch.node import Node

__all__ = ["DispatcherCores", "core_series"]

REASON = "monitor"


class DispatcherCores:
    """`orch.monitor_recovery.CoreControl` over the node's dispatcher."""

    def __init__(self, node: Node) -> None:
        self._node = node

    async def requeue(self, core_id: str) -> int:
        """Force-expire the leases of ``core_id``'s held tasks; how many were taken back."""
        count: int = await self._dispatcher().ask(lambda r: RequeueCore(core_id, r, REASON))
        return count

    async def isolate(self, core_id: str, fallback: str | None) -> None:
        """Stop handing out ``core_id``'s tasks (the fallback core's workers take them, if given)."""
        await self._ask_state(lambda r: IsolateCore(core_id, r, fallback, REASON))

    async def restore(self, core_id: str) -> None:
        """Put ``core_id`` back into rotation."""
        await self._ask_state(lambda r: RestoreCore(core_id, r, REASON))

    async def _ask_state(self, make: Callable[..., IsolateCore | RestoreCore]) -> CoreState:
        state: CoreState = await self._dispatcher().ask(make)
        return state

    def _dispatcher(self) -> ActorRef[DispatcherMsg]:
        ref = self._node.dispatcher
        if ref is None:
            raise RuntimeError("this node runs no dispatcher")
        return ref


def core_series(cores: tuple[CoreHealthView, ...], now: float) -> dict[str, float]:
    """The core health series (see module doc) of ``cores`` as of wall time ``now`` (the dispatcher's
    heartbeat stamps are wall-clock too)."""
    out: dict[str, float] = {}
    for core in cores:
        labels = {"core": core.core_id}
        held = core.claimed + core.running
        if held and core.stalest_heartbeat_at is not None:
            out[series_key("core_heartbeat_age_seconds", labels)] = max(0.0, now - core.stalest_heartbeat_at)
        out[series_key("core_isolated", labels)] = 1.0 if core.isolated else 0.0
        out[series_key("core_waiting_workers", labels)] = core.waiting_workers
    return out
