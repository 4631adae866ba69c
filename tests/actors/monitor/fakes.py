"""Test implementations of the monitor's ports (the node implements them for real)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class FakeClock:
    """Wall time the test sets by hand."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Samples:
    """A `SampleSource` whose values the test sets."""

    values: dict[str, float] = field(default_factory=dict)

    def sample(self) -> Mapping[str, float]:
        return dict(self.values)


@dataclass
class Recovery:
    """A `RecoveryPort` that records calls; ``fail`` names methods that raise."""

    calls: list[tuple[str, ...]] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)
    requeued: int = 3

    def _call(self, *call: str) -> None:
        self.calls.append(call)
        if call[0] in self.fail:
            raise RuntimeError(f"{call[0]} refused")

    async def restart_actor(self, actor_id: str) -> None:
        self._call("restart_actor", actor_id)

    async def requeue_core(self, core_id: str) -> int:
        self._call("requeue_core", core_id)
        return self.requeued

    async def isolate_core(self, core_id: str, fallback: str | None) -> None:
        self._call("isolate_core", core_id, str(fallback))

    async def restore_core(self, core_id: str) -> None:
        self._call("restore_core", core_id)

    async def rollback_setting(self, key: str) -> str:
        self._call("rollback_setting", key)
        return f"{key} reverted to v1"
