"""The node's `RecoveryPort`: what the monitor's recovery policies really do.

- restart_actor: `Supervisor.restart_child` (graceful stop, start again; address and queue survive);
- requeue_core / isolate_core / restore_core: dispatcher messages (`CoreControl` below adapts them);
- rollback_setting: `RuntimeSettings.rollback` (re-applies the last known good version).

Every method raises on failure; the monitor records the exception as the action's outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from orch.runtime_settings import RuntimeSettings

if TYPE_CHECKING:
    from orch.node import Node

__all__ = ["CoreControl", "NodeRecovery"]


class CoreControl(Protocol):
    """Core operations of the dispatcher, as the recovery port needs them."""

    async def requeue(self, core_id: str) -> int:
        """Re-queue the tasks held by workers of ``core_id``; how many."""
        ...

    async def isolate(self, core_id: str, fallback: str | None) -> None:
        """Stop handing out ``core_id``'s tasks (or send them to ``fallback``)."""
        ...

    async def restore(self, core_id: str) -> None:
        """Put ``core_id`` back into rotation."""
        ...


class NodeRecovery:
    """`actors.monitor.ports.RecoveryPort` over one node."""

    def __init__(self, node: Node, settings: RuntimeSettings, cores: CoreControl | None = None) -> None:
        self._node = node
        self._settings = settings
        self.cores = cores

    async def restart_actor(self, actor_id: str) -> None:
        """Restart ``actor_id`` through the supervisor (LookupError if the tree has no such actor)."""
        sup = self._node.supervisor
        if sup is None:
            raise RuntimeError("the supervision tree is not running")
        if actor_id == "monitor":
            # Restarting the monitor from inside its own round would cancel the round that asked.
            raise ValueError("the monitor does not restart itself")
        await sup.restart_child(actor_id)

    async def requeue_core(self, core_id: str) -> int:
        """Re-queue the work held by ``core_id``'s silent workers."""
        return await self._cores().requeue(core_id)

    async def isolate_core(self, core_id: str, fallback: str | None) -> None:
        """Take ``core_id`` out of rotation."""
        await self._cores().isolate(core_id, fallback)

    async def restore_core(self, core_id: str) -> None:
        """Put ``core_id`` back into rotation."""
        await self._cores().restore(core_id)

    async def rollback_setting(self, key: str) -> str:
        """Re-apply the last known good version of ``key``; describes what was restored."""
        version = await self._settings.rollback(key, by="monitor")
        return f"{key}: {version.reason}"

    def _cores(self) -> CoreControl:
        if self.cores is None:
            raise NotImplementedError("this node's dispatcher offers no core isolation")
        return self.cores
