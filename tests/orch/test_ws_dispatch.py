"""WS /ws/dispatch against a real node with trio-websocket: pipelined dispatch, the worker protocol, the
in-flight bound, per-op role checks, bad messages answered (never a close), shutdown."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection, open_websocket_url

from orch.server import RunningNode

from .auth_helpers import auth_headers, token_for
from .helpers import StartNode

pytestmark = pytest.mark.integration


@asynccontextmanager
async def dispatch_socket(node: RunningNode, role: str = "operator") -> AsyncIterator[WebSocketConnection]:
    token = await token_for(node, role)
    url = node.url.replace("http://", "ws://") + f"/ws/dispatch?token={token}"
    async with open_websocket_url(url) as ws:
        yield ws


async def request(ws: WebSocketConnection, **message: Any) -> None:
    await ws.send_message(json.dumps(message))


async def answer(ws: WebSocketConnection) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await ws.get_message())
        if message.get("op") != "heartbeat":
            return message


async def test_pipelined_dispatches_are_all_answered_by_id(start_node: StartNode) -> None:
    node = await start_node(**{"feeds.ws_max_in_flight": 16})
    count = 300
    with trio.fail_after(30):
        async with dispatch_socket(node) as ws:

            async def send_all() -> None:
                for i in range(count):
                    await request(ws, id=i, op="dispatch", core_id=f"CORE_{i % 3}", metadata={"i": i})

            answers: dict[int, dict[str, Any]] = {}
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_all)
                while len(answers) < count:
                    message = await answer(ws)
                    assert message["ok"], message
                    assert message["id"] not in answers
                    answers[message["id"]] = message["result"]
    assert sorted(answers) == list(range(count))
    assert all(r["status"] == "queued" and r["metadata"] == {"i": i} for i, r in answers.items())
    assert len({r["task_id"] for r in answers.values()}) == count
    async with httpx.AsyncClient(base_url=node.url, headers=await auth_headers(node, "operator")) as http:
        task = (await http.get(f"/tasks/{answers[7]['task_id']}")).json()
    assert task["core_id"] == "CORE_1" and task["status"] == "queued"


async def test_dispatch_batch_in_one_message(start_node: StartNode) -> None:
    node = await start_node()
    with trio.fail_after(10):
        async with dispatch_socket(node) as ws:
            await request(ws, id="b", op="dispatch_batch", tasks=[{"core_id": "B1"}, {"coreId": "B2"}])
            message = await answer(ws)
            assert message["id"] == "b" and message["ok"]
            assert [t["core_id"] for t in message["result"]["tasks"]] == ["B1", "B2"]
            await request(ws, id="bad", op="dispatch_batch", tasks=[{"core_id": "B1"}, {"priority": 1}])
            error = await answer(ws)
            assert error["id"] == "bad" and error["error"]["errors"][0]["field"] == "tasks.1.core_id"


async def test_a_worker_claims_heartbeats_and_reports_over_one_socket(start_node: StartNode) -> None:
    node = await start_node()
    with trio.fail_after(15):
        async with dispatch_socket(node, "system") as ws:
            await request(ws, id=1, op="dispatch", core_id="W1")
            dispatched = (await answer(ws))["result"]
            await request(ws, id=2, op="claim", core_id="W1", wait=5)
            claimed = await answer(ws)
            assert claimed["id"] == 2 and claimed["result"]["task"]["task_id"] == dispatched["task_id"]
            lease = claimed["result"]["lease_token"]
            task_id = dispatched["task_id"]
            await request(ws, id=3, op="heartbeat", task_id=task_id, lease_token=lease, progress={"pct": 50})
            beat = await answer(ws)
            assert beat["ok"] and beat["result"]["cancel_requested"] is False
            await request(ws, id=4, op="report", task_id=task_id, lease_token=lease, status="running")
            assert (await answer(ws))["result"]["status"] == "running"
            await request(
                ws,
                id=5,
                op="report",
                task_id=task_id,
                lease_token=lease,
                status="succeeded",
                result={"ok": 1},
            )
            done = await answer(ws)
            assert done["result"]["status"] == "succeeded" and done["result"]["result"] == {"ok": 1}
            await request(ws, id=6, op="report", task_id=task_id, lease_token="stale", status="failed")
            stale = await answer(ws)
            assert stale["id"] == 6 and stale["error"]["status"] == 409
            await request(ws, id=7, op="claim", core_id="W1", wait=0.1)
            assert await answer(ws) == {"id": 7, "ok": True, "result": None}  # nothing came


async def test_no_more_than_the_in_flight_bound_runs_at_once(start_node: StartNode) -> None:
    node = await start_node(**{"feeds.ws_max_in_flight": 2})
    with trio.fail_after(15):
        async with dispatch_socket(node, "system") as ws:
            await request(ws, id="c1", op="claim", core_id="EMPTY", wait=10)
            await request(ws, id="c2", op="claim", core_id="EMPTY", wait=10)
            await request(ws, id="p", op="ping")
            with trio.move_on_after(0.5) as waited:
                await answer(ws)
            assert waited.cancelled_caught, "a third request ran while two were in flight"
            async with httpx.AsyncClient(
                base_url=node.url, headers=await auth_headers(node, "operator")
            ) as http:
                assert (await http.post("/dispatch", json={"core_id": "EMPTY"})).status_code in (
                    200,
                    201,
                    202,
                )
            first = await answer(ws)
            assert first["id"] in ("c1", "c2") and first["result"]["task"]["core_id"] == "EMPTY"
            assert await answer(ws) == {"id": "p", "ok": True, "result": {"pong": True}}


async def test_each_op_is_checked_against_the_callers_role(start_node: StartNode) -> None:
    node = await start_node()
    with trio.fail_after(10):
        async with dispatch_socket(node, "operator") as ws:
            await request(ws, id=1, op="claim", core_id="X", wait=0)
            refused = await answer(ws)
            assert refused["id"] == 1 and refused["error"]["status"] == 403
            await request(ws, id=2, op="report", task_id="t", lease_token="l", status="running")
            assert (await answer(ws))["error"]["status"] == 403
            await request(ws, id=3, op="dispatch", core_id="X")
            assert (await answer(ws))["ok"]  # and the socket is still open
    with trio.fail_after(10), pytest.raises(ConnectionRejected) as rejected:
        async with dispatch_socket(node, "viewer"):
            pass
    assert rejected.value.status_code == 403


async def test_bad_messages_are_answered_with_problems_and_the_socket_stays_open(
    start_node: StartNode,
) -> None:
    node = await start_node()
    cases: list[tuple[str, Any, int, str]] = [
        ("{oops", None, 400, ""),
        ("[]", None, 422, ""),
        (json.dumps({"op": "dispatch", "core_id": "X"}), None, 422, "id"),
        (json.dumps({"id": True, "op": "ping"}), None, 422, "id"),
        (json.dumps({"id": 1, "op": "fly"}), 1, 422, "op"),
        (json.dumps({"id": 2, "op": "dispatch"}), 2, 422, "core_id"),
        (json.dumps({"id": 3, "op": "dispatch", "core_id": "X", "priority": "high"}), 3, 422, "priority"),
        (json.dumps({"id": 4, "op": "dispatch", "core_id": "X", "colour": "red"}), 4, 422, "colour"),
        (json.dumps({"id": 5, "op": "heartbeat", "task_id": "nope", "lease_token": "l"}), 5, 404, ""),
        (json.dumps({"id": 6, "op": "claim", "core_id": "X", "wait": 600}), 6, 422, "wait"),
    ]
    with trio.fail_after(15):
        async with dispatch_socket(node, "system") as ws:
            for raw, request_id, status, field in cases:
                await ws.send_message(raw)
                message = await answer(ws)
                assert message["ok"] is False and message["id"] == request_id, raw
                problem = message["error"]
                assert problem["status"] == status, (raw, problem)
                assert problem["type"] and problem["title"] and problem["detail"]
                if field:
                    assert problem["errors"][0]["field"] == field, raw
            await request(ws, id="still", op="ping")
            assert (await answer(ws))["result"] == {"pong": True}


async def test_token_in_the_first_message_and_refusals(start_node: StartNode) -> None:
    node = await start_node()
    url = node.url.replace("http://", "ws://") + "/ws/dispatch"
    with trio.fail_after(10):
        async with open_websocket_url(url) as ws:
            await request(ws, op="auth", token=await token_for(node, "operator"))
            assert (await answer(ws))["op"] == "authenticated"
            await request(ws, id=1, op="ping")
            assert (await answer(ws))["ok"]
        async with open_websocket_url(url) as ws:
            await request(ws, id=1, op="dispatch", core_id="X")
            error = await answer(ws)
            assert error["op"] == "error" and error["error"]["status"] == 401
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason.code == 4401


async def test_shutdown_answers_waiting_claims_then_closes_with_1001(start_node: StartNode) -> None:
    node = await start_node(**{"server.shutdown_grace": 10.0})
    with trio.fail_after(5):
        async with dispatch_socket(node, "system") as ws:
            await request(ws, id="wait", op="claim", core_id="IDLE", wait=30)
            await request(ws, id="p", op="ping")
            assert (await answer(ws))["id"] == "p"
            node.node.request_shutdown()
            cut = await answer(ws)
            assert cut["id"] == "wait" and cut["error"]["status"] == 503
            assert (await answer(ws))["op"] == "shutdown"
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
    assert closed.value.reason.code == 1001
