"""A running monitor over real SQLite files (metrics.db and an orch.db event log) with test ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from actors.monitor.actor import MonitorActor
from actors.monitor.messages import MonitorMsg, SampleNow
from actors.monitor.ports import DatabaseEventSink
from actors.monitor.settings import MonitorSettings
from actors.monitor.store import MetricsStore
from actors.notifier.messages import NotifierMsg
from actors.storage import Database, StoredEvent
from runtime import ActorRef, open_actor

from .fakes import FakeClock, Recovery, Samples


@dataclass
class Rig:
    """Everything a monitor test touches."""

    ref: ActorRef[MonitorMsg]
    clock: FakeClock
    samples: Samples
    recovery: Recovery
    events_db: Database
    store: MetricsStore
    published: list[StoredEvent] = field(default_factory=list)

    async def round_at(self, t: float, **values: float) -> None:
        """Set the time (seconds after the rig's epoch) and the samples, then run one round."""
        self.clock.now = EPOCH + t
        self.samples.values = {_key(k): v for k, v in values.items()}
        await self.ref.ask(lambda r: SampleNow(r))

    async def events(self, *topics: str) -> list[StoredEvent]:
        return await self.events_db.events_after(0, topics=topics or None)


EPOCH = 1_800_000_000.0


def _key(name: str) -> str:
    # keyword arguments cannot hold braces: actor_down__dispatcher -> actor_down{actor="dispatcher"}
    for label in ("actor", "core", "priority", "path"):
        prefix, sep, value = name.partition(f"__{label}_")
        if sep:
            return f'{prefix}{{{label}="{value}"}}'
    return name


RigFactory = Callable[..., AbstractAsyncContextManager[Rig]]


@pytest.fixture
def rig(tmp_path: Path) -> RigFactory:
    """``async with rig(settings, notifier=None) as r`` starts a monitor (interval far away: rounds are
    driven by `Rig.round_at`)."""

    @asynccontextmanager
    async def start(
        settings: MonitorSettings, notifier: ActorRef[NotifierMsg] | None = None, **kw: Any
    ) -> AsyncIterator[Rig]:
        clock, samples, recovery = FakeClock(EPOCH), Samples(), Recovery()
        published: list[StoredEvent] = []
        async with (
            MetricsStore.open(tmp_path / "metrics.db") as store,
            Database.open(tmp_path / "orch.db", publish=published.extend) as events_db,
        ):

            def factory() -> MonitorActor:
                return MonitorActor(
                    settings, store, samples=samples, recovery=recovery, events=DatabaseEventSink(events_db),
                    notifier=notifier, system=lambda: {}, clock=clock, **kw,
                )  # fmt: skip

            async with open_actor(factory, name="monitor") as ref:
                yield Rig(ref, clock, samples, recovery, events_db, store, published)

    return start
