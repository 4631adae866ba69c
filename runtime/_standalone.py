"""Running a single actor without building a tree (tests, scripts)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import trio

from ._actor import Actor
from ._ref import ActorRef
from ._spec import Restart, supervisor, worker
from ._status import ChildCrashed, RuntimeEvent
from ._supervisor import Supervisor

M = TypeVar("M")


class ActorFailed(Exception):
    """Raised on leaving ``open_actor`` when the actor crashed while it ran."""


@asynccontextmanager
async def open_actor(
    factory: Callable[[], Actor[M]], *, capacity: int = 1000, name: str = "actor"
) -> AsyncIterator[ActorRef[M]]:
    """Start one actor (not restarted on a crash), yield its ref, stop it gracefully on exit.

    If the actor crashed meanwhile, leaving the block raises ``ActorFailed`` naming the crash, so a test
    cannot miss it.
    """
    spec = worker(name, factory, capacity=capacity, restart=Restart.TEMPORARY, shutdown=None)
    crashes: list[ChildCrashed] = []

    def record(event: RuntimeEvent) -> None:
        if isinstance(event, ChildCrashed):
            crashes.append(event)

    tree = Supervisor(supervisor(f"{name}-sup", [spec]), on_event=record)
    async with trio.open_nursery() as nursery:
        await nursery.start(tree.run)
        try:
            yield spec.ref
        finally:
            await tree.stop()
    if crashes:
        failure = crashes[0].failure
        raise ActorFailed(f"actor {name!r} crashed: {failure.type}: {failure.message}")
