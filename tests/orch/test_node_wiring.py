"""The node's wiring: database + supervisor tree, crash events, runtime errors at the edge, stop order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import assert_never

import httpx
import pytest
import trio
from quart import Response

from actors.storage import Database
from orch.config import load_config
from orch.http import Router, json_response
from orch.node import Node
from orch.server import RunningNode, run_node
from runtime import Actor, ActorRef, ChildSpec, Reply, worker

from .helpers import StartNode

pytestmark = pytest.mark.integration


@dataclass(frozen=True, slots=True)
class Ping:
    reply: Reply[str]


@dataclass(frozen=True, slots=True)
class Crash:
    pass


@dataclass(frozen=True, slots=True)
class Park:
    """Blocks the actor until the node stops, so its mailbox fills up."""


Msg = Ping | Crash | Park


class Probe(Actor[Msg]):
    """A tiny actor: answers pings, crashes on request, and records its stop in the database."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def handle(self, msg: Msg) -> None:
        match msg:
            case Ping(reply=reply):
                reply.send("pong")
            case Crash():
                raise RuntimeError("probe asked to crash")
            case Park():
                await trio.sleep_forever()
            case _:
                assert_never(msg)

    async def on_stop(self) -> None:
        # The database must still be open while actors stop (actors stop before storage closes).
        await self.node.database().write(lambda tx: tx.emit("test.probe_stopped", subject="probe"))


class Wiring:
    def __init__(self) -> None:
        self.ref: ActorRef[Msg] | None = None

    def __call__(self, node: Node) -> list[ChildSpec]:
        spec = worker("probe", lambda: Probe(node), capacity=2, shutdown=1.0)
        self.ref = spec.ref
        return [spec]


def probe_router(wiring: Wiring) -> Router:
    router = Router("probe")

    @router.post("/probe/ping", summary="Ask the probe")
    async def ping() -> Response:
        assert wiring.ref is not None
        return json_response({"answer": await wiring.ref.ask(lambda r: Ping(reply=r))})

    @router.post("/probe/crash", summary="Crash the probe")
    async def crash() -> Response:
        assert wiring.ref is not None
        await wiring.ref.tell(Crash())
        return json_response({}, 202)

    @router.post("/probe/park", summary="Park the probe, then fill its mailbox")
    async def park() -> Response:
        assert wiring.ref is not None
        wiring.ref.tell_nowait(Park())
        return json_response({}, 202)

    return router


async def test_actor_appears_in_health_and_answers_through_http(start_node: StartNode) -> None:
    wiring = Wiring()
    running = await start_node(routers=[probe_router(wiring)], actors=wiring)
    async with httpx.AsyncClient(base_url=running.url) as http:
        assert (await http.post("/probe/ping")).json() == {"answer": "pong"}
        health = (await http.get("/health")).json()
    assert health["components"]["probe"]["status"] == "up"
    assert health["components"]["probe"]["mailbox"] == {"depth": 0, "capacity": 2}
    assert health["components"]["database"]["status"] == "up"


async def test_crash_is_restarted_stored_as_events_and_counted(start_node: StartNode) -> None:
    wiring = Wiring()
    running = await start_node(routers=[probe_router(wiring)], actors=wiring)
    node = running.node
    async with httpx.AsyncClient(base_url=running.url) as http:
        assert (await http.post("/probe/crash")).status_code == 202

        async def stored_types() -> list[str]:
            return [e.type for e in await node.database().events_after(0)]

        types: list[str] = []

        async def poll() -> None:
            nonlocal types
            with trio.fail_after(5):
                while "actor.restarted" not in types:
                    types = await stored_types()
                    await trio.sleep(0.02)

        await poll()
        assert "actor.crashed" in types
        assert (await http.post("/probe/ping")).json() == {"answer": "pong"}  # same ref after restart
        metrics = (await http.get("/metrics")).text
    assert 'orch_actor_crashes_total{actor="probe"} 1.0' in metrics
    assert 'orch_actor_restarts_total{actor="probe",reason="crash"} 1.0' in metrics
    assert 'orch_actor_mailbox_capacity{actor="probe"} 2.0' in metrics


async def test_full_mailbox_is_503_with_retry_after(start_node: StartNode) -> None:
    wiring = Wiring()
    running = await start_node(routers=[probe_router(wiring)], actors=wiring)
    async with httpx.AsyncClient(base_url=running.url) as http:
        statuses = [(await http.post("/probe/park")).status_code for _ in range(3)]
        assert statuses == [202, 202, 202]  # one being handled (parked) + two queued = capacity
        refused = await http.post("/probe/park")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    assert "overloaded" in refused.json()["detail"]


async def test_actors_stop_before_the_database_closes(nursery: trio.Nursery, tmp_path: Path) -> None:
    wiring = Wiring()
    config = load_config(env={}, overrides={"server.port": 0, "database.data_dir": tmp_path})
    finished = trio.Event()

    async def run(task_status: trio.TaskStatus[RunningNode]) -> None:
        await run_node(
            config, on_ready=lambda url: None, handle_signals=False, actors=wiring, task_status=task_status
        )
        finished.set()

    running: RunningNode = await nursery.start(run)
    running.node.request_shutdown()
    with trio.fail_after(5):
        await finished.wait()
    # The probe's on_stop write was committed, so the database was still open when the actors stopped.
    async with Database.open(config.database.db_path) as reopened:
        events = await reopened.events_after(0)
    assert [e.type for e in events] == ["test.probe_stopped"]
