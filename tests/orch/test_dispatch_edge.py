"""POST /dispatch is served by the Edge without Quart (`DispatchEndpoint`): every answer — success, each
error class, `stay` — equals the Quart route's (status, the headers that matter, body), and the request
is counted and logged under its route."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import trio

from orch.server import RunningNode

from .auth_helpers import auth_headers
from .edge_helpers import Sender, answer_shape, both_ways, json_post
from .helpers import StartNode

pytestmark = pytest.mark.integration

RAW = ("POST", "/dispatch")
VOLATILE = frozenset(
    {"task_id", "created_at", "updated_at", "estimated_start", "queue_position", "not_before"}
)


def shape(answer: httpx.Response) -> dict[str, Any]:
    """What must be the same whichever way the request was served (ids and clocks left out)."""
    body = answer.json()
    if "task_id" in body:
        assert answer.headers.get("location", f"/tasks/{body['task_id']}") == f"/tasks/{body['task_id']}"
    return answer_shape(answer, VOLATILE)


async def compared(node: RunningNode, send: Sender) -> tuple[dict[str, Any], dict[str, Any]]:
    """`send(http)` served raw, then by the Quart route, as compared shapes."""
    raw, quart = await both_ways(node, RAW, send)
    return shape(raw), shape(quart)


def post(body: Any = None, *, content: bytes | None = None, **headers: str) -> Sender:
    return json_post("/dispatch", body, content=content, **headers)


@pytest.fixture
async def small_node(start_node: StartNode) -> RunningNode:
    return await start_node(**{"server.max_body_bytes": 512})


CASES = {
    "created": ({"core_id": "EQ", "priority": 3, "metadata": {"k": "é"}}, None, {}),
    "camel_case": ({"coreId": "EQ", "maxAttempts": 2}, None, {}),
    "bad_field": ({"core_id": "EQ", "priority": 101}, None, {}),
    "unknown_member": ({"core_id": "EQ", "colour": "red"}, None, {}),
    "not_an_object": ([1, 2], None, {}),
    "malformed_json": (None, b'{"core_id": ', {"Content-Type": "application/json"}),
    "not_json": (None, b"core_id=EQ", {"Content-Type": "text/plain"}),
    "empty_body": (None, b"", {"Content-Type": "application/json"}),
    "too_large": (None, b'{"core_id": "EQ", "pad": "' + b"x" * 600 + b'"}', {}),
    "long_idempotency_header": ({"core_id": "EQ"}, None, {"Idempotency-Key": "k" * 201}),
    "keys_disagree": ({"core_id": "EQ", "idempotency_key": "a"}, None, {"Idempotency-Key": "b"}),
    "stay_until_deadline": ({"core_id": "EQ", "stay": True, "wait": 0.01}, None, {}),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_an_authenticated_dispatch_is_answered_as_the_quart_route_would(
    small_node: RunningNode, case: str
) -> None:
    body, content, headers = CASES[case]
    auth = await auth_headers(small_node, "operator")
    raw, quart = await compared(small_node, post(body, content=content, **auth, **headers))
    assert raw == quart
    assert raw["headers"]["x-request-id"] == "req-1"
    if raw["status"] < 300:
        assert "ratelimit" in raw["header_names"]


async def test_the_idempotent_repeat_is_200_either_way(small_node: RunningNode) -> None:
    auth = await auth_headers(small_node, "operator")
    send = post({"core_id": "EQ"}, **auth, **{"Idempotency-Key": "same"})
    async with httpx.AsyncClient(base_url=small_node.url) as http:
        first = await send(http)
    assert first.status_code == 201
    raw, quart = await compared(small_node, send)
    assert raw == quart
    assert raw["status"] == 200 and raw["body"]["created"] is False


@pytest.mark.parametrize(
    ("role", "authorization"),
    [(None, None), (None, "Basic abc"), (None, "Bearer not-a-token"), ("viewer", None)],
)
async def test_refused_callers_hear_the_same_401_or_403(
    small_node: RunningNode, role: str | None, authorization: str | None
) -> None:
    headers = await auth_headers(small_node, role) if role else {}
    if authorization is not None:
        headers["Authorization"] = authorization
    raw, quart = await compared(small_node, post({"core_id": "EQ"}, **headers))
    assert raw == quart
    assert raw["status"] in (401, 403)


async def test_an_over_limit_caller_hears_the_same_429(start_node: StartNode) -> None:
    node = await start_node(**{"security.rate_limits": ["write=1/60"]})
    auth = await auth_headers(node, "admin")
    async with httpx.AsyncClient(base_url=node.url) as http:
        assert (await http.post("/dispatch", json={"core_id": "EQ"}, headers=auth)).status_code == 201
    raw, quart = await compared(node, post({"core_id": "EQ"}, **auth))
    assert raw == quart
    assert raw["status"] == 429 and raw["headers"]["retry-after"] is not None


async def test_a_stay_dispatch_takes_one_rate_limit_unit(start_node: StartNode) -> None:
    node = await start_node(**{"security.rate_limits": ["write=100/3600"]})  # no refill between the calls
    auth = await auth_headers(node, "admin")
    async with httpx.AsyncClient(base_url=node.url, headers=auth) as http:
        plain = await http.post("/dispatch", json={"core_id": "EQ"})
        stay = await http.post("/dispatch", json={"core_id": "EQ", "stay": True, "wait": 0.01})
        after = await http.post("/dispatch", json={"core_id": "EQ"})
    assert (plain.status_code, stay.status_code, after.status_code) == (201, 200, 201)
    assert stay.json()["finished"] is False, stay.text
    remaining = [int(r.headers["RateLimit"].split(";r=")[1].split(";")[0]) for r in (plain, stay, after)]
    assert remaining[0] - remaining[1] == 1 and remaining[1] - remaining[2] == 1


async def test_raw_dispatches_are_counted_and_logged_under_their_route(
    small_node: RunningNode, access_records: list[logging.LogRecord]
) -> None:
    auth = await auth_headers(small_node, "operator")
    async with httpx.AsyncClient(base_url=small_node.url) as http:
        assert (await http.post("/dispatch", json={"core_id": "EQ"}, headers=auth)).status_code == 201
        assert (await http.post("/dispatch", json={"core_id": ""}, headers=auth)).status_code == 422
        assert (await http.post("/dispatch", json={})).status_code == 401
        metrics = (await http.get("/metrics")).text
    for status in (201, 422, 401):
        assert (
            f'orch_http_requests_total{{endpoint="/dispatch",method="POST",status="{status}"}} 1.0' in metrics
        )
    logged = [(r.route, r.status) for r in access_records if r.route == "/dispatch"]  # type: ignore[attr-defined]
    assert logged == [("/dispatch", 201), ("/dispatch", 422), ("/dispatch", 401)]


async def test_other_methods_on_dispatch_still_go_through_the_router(small_node: RunningNode) -> None:
    async with httpx.AsyncClient(base_url=small_node.url) as http:
        answer = await http.get("/dispatch")
    assert answer.status_code == 405
    assert "POST" in answer.headers["Allow"]


async def test_a_stay_dispatch_whose_client_leaves_is_let_go_and_its_task_kept(start_node: StartNode) -> None:
    node = await start_node()
    auth = await auth_headers(node, "admin")
    http_metrics = node.app.edge.metrics
    async with httpx.AsyncClient(base_url=node.url, headers=auth, timeout=0.5) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/dispatch", json={"core_id": "LEAVE", "stay": True, "wait": 600})
    # The handler ends when the server sees the disconnect, not after `wait` (bounded look, up to 10 s).
    for _ in range(1000):
        if not http_metrics.in_flight_now:
            break
        await trio.sleep(0.01)
    assert http_metrics.in_flight_now == 0
    async with httpx.AsyncClient(base_url=node.url, headers=auth) as http:
        listed = (await http.get("/tasks", params={"core_id": "LEAVE"})).json()["tasks"]
    assert [t["status"] for t in listed] == ["queued"]
