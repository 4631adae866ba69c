"""Graceful shutdown: stop accepting, let in-flight requests finish within the grace period, then stop."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from quart import Response

from orch.config import load_config
from orch.http import Router, json_response
from orch.server import RunningNode, run_node

pytestmark = pytest.mark.integration

slow = Router("slow")
entered = trio.Event()


@slow.get("/slow/<float:seconds>", summary="Answers after a delay")
async def sleepy(seconds: float) -> Response:
    entered.set()
    await trio.sleep(seconds)
    return json_response({"slept": seconds})


async def start(nursery: trio.Nursery, tmp_path: Path, grace: float) -> tuple[RunningNode, trio.Event]:
    config = load_config(
        env={},
        overrides={"server.port": 0, "database.data_dir": tmp_path, "server.shutdown_grace": grace},
    )
    finished = trio.Event()

    async def run(task_status: trio.TaskStatus[RunningNode]) -> None:
        await run_node(
            config, on_ready=lambda url: None, handle_signals=False, routers=[slow], task_status=task_status
        )
        finished.set()

    running: RunningNode = await nursery.start(run)
    return running, finished


async def test_in_flight_request_finishes_and_new_connections_are_refused(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    global entered
    entered = trio.Event()
    running, finished = await start(nursery, tmp_path, grace=5.0)
    results: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=running.url) as http:

        async def in_flight() -> None:
            results.append(await http.get("/slow/0.5"))

        async with trio.open_nursery() as inner:
            inner.start_soon(in_flight)
            await entered.wait()
            running.node.request_shutdown()
            await trio.sleep(0.1)
            async with httpx.AsyncClient(base_url=running.url) as fresh:
                with pytest.raises(httpx.ConnectError):
                    await fresh.get("/health")
    assert results[0].status_code == 200
    assert results[0].json() == {"slept": 0.5}
    with trio.fail_after(3):
        await finished.wait()


async def test_request_outliving_the_grace_period_is_cut_and_the_node_stops(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    global entered
    entered = trio.Event()
    running, finished = await start(nursery, tmp_path, grace=0.3)
    async with httpx.AsyncClient(base_url=running.url) as http:
        async with trio.open_nursery() as inner:

            async def too_slow() -> None:
                response = await http.get("/slow/30.0")
                assert response.status_code == 503
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["type"] == "urn:orch:problem:shutting-down"
                assert response.headers["retry-after"] == "5"

            inner.start_soon(too_slow)
            await entered.wait()
            began = trio.current_time()
            running.node.request_shutdown()
            with trio.fail_after(3):
                await finished.wait()
    assert trio.current_time() - began < 2.0


async def test_run_node_unwinds_when_cancelled(nursery: trio.Nursery, tmp_path: Path) -> None:
    config = load_config(env={}, overrides={"server.port": 0, "database.data_dir": tmp_path / "d"})
    with trio.move_on_after(5) as scope:
        async with trio.open_nursery() as inner:
            running: RunningNode = await inner.start(
                partial(run_node, config, on_ready=lambda url: None, handle_signals=False)
            )
            async with httpx.AsyncClient(base_url=running.url) as http:
                assert (await http.get("/health")).status_code == 200
            inner.cancel_scope.cancel()
    assert not scope.cancelled_caught
    assert (tmp_path / "d").is_dir()
