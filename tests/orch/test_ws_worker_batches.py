"""WS /ws/dispatch worker batches: `claim` with `max`, `heartbeat_batch` and `report_batch` with per-item
results (a stale token or a bad item fails only its item; the socket stays open)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio_websocket import WebSocketConnection

from .helpers import StartNode
from .test_ws_dispatch import answer, dispatch_socket, request

pytestmark = pytest.mark.integration


async def ask(ws: WebSocketConnection, request_id: int, **message: Any) -> dict[str, Any]:
    await request(ws, id=request_id, **message)
    got = await answer(ws)
    assert got["id"] == request_id, got
    return got


async def test_a_worker_claims_many_then_heartbeats_and_reports_them_in_batches(
    start_node: StartNode,
) -> None:
    node = await start_node()
    with trio.fail_after(20):
        async with dispatch_socket(node, "system") as ws:
            tasks = [{"core_id": "WB1"} for _ in range(3)]
            dispatched = (await ask(ws, 1, op="dispatch_batch", tasks=tasks))["result"]["tasks"]
            claims = (await ask(ws, 2, op="claim", core_id="WB1", max=2, wait=5))["result"]["claims"]
            ids = [t["task_id"] for t in dispatched]
            assert [c["task"]["task_id"] for c in claims] == ids[:2]
            a, b = claims
            beats = [
                {"task_id": a["task"]["task_id"], "lease_token": a["lease_token"]},
                {"task_id": b["task"]["task_id"], "lease_token": "stale"},
                {"task_id": b["task"]["task_id"], "lease_token": b["lease_token"], "lease": 0.5},
            ]
            out = (await ask(ws, 3, op="heartbeat_batch", heartbeats=beats))["result"]["results"]
            assert out[0]["ok"] and out[0]["cancel_requested"] is False
            assert not out[1]["ok"] and out[1]["error"]["status"] == 409
            assert not out[2]["ok"] and out[2]["error"]["field"] == "heartbeats.2.lease"
            reports = [
                {"task_id": c["task"]["task_id"], "lease_token": c["lease_token"], "status": "succeeded"}
                for c in claims
            ] + [{"task_id": "nope", "lease_token": "x", "status": "succeeded"}]
            out = (await ask(ws, 4, op="report_batch", reports=reports))["result"]["results"]
            assert [r["ok"] for r in out] == [True, True, False]
            assert {r["task"]["status"] for r in out[:2]} == {"succeeded"}
            assert out[2]["error"]["status"] == 404
            rest = (await ask(ws, 5, op="claim", core_id="WB1", max=5, wait=5))["result"]["claims"]
            assert [c["task"]["task_id"] for c in rest] == ids[2:]
            empty = await ask(ws, 6, op="claim", core_id="WB1", max=5, wait=0.1)
            assert empty["result"] == {"claims": []}  # nothing came


async def test_bad_batches_are_answered_with_an_error_and_the_socket_stays_open(
    start_node: StartNode,
) -> None:
    node = await start_node()
    with trio.fail_after(20):
        async with dispatch_socket(node, "system") as ws:
            assert (await ask(ws, 1, op="heartbeat_batch", heartbeats=[]))["error"]["status"] == 422
            assert (await ask(ws, 2, op="report_batch"))["error"]["status"] == 422
            assert (await ask(ws, 3, op="claim", core_id="C", max=0, wait=0))["error"]["status"] == 422
            assert (await ask(ws, 4, op="ping"))["result"] == {"pong": True}


async def test_batch_ops_need_the_worker_roles(start_node: StartNode) -> None:
    node = await start_node()
    with trio.fail_after(20):
        async with dispatch_socket(node, "operator") as ws:
            item = {"task_id": "t", "lease_token": "k", "status": "succeeded"}
            denied = await ask(ws, 1, op="report_batch", reports=[item])
            assert denied["error"]["status"] == 403
