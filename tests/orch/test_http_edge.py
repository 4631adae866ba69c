"""Problem+json for every error, request ids, CORS: against a real node over real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from quart import Response

from orch.http import Router, json_response, read_json_object
from orch.http.problems import PROBLEM_CONTENT_TYPE, Conflict, register_error
from orch.server import RunningNode

from .helpers import StartNode

pytestmark = pytest.mark.integration


class WidgetMissing(Exception):
    """Stands in for an actor's domain error: mapped once, at the edge."""


register_error(WidgetMissing, lambda exc: Conflict(f"widget state: {exc}"))

demo = Router("demo")


@demo.post("/echo", summary="Echo a validated body", responses={200: "Echoed"})
async def echo() -> Response:
    body = await read_json_object()
    name = body.req_str("name", max_len=16)
    count = body.opt_int("count", default=1, min=1, max=10)
    body.reject_unknown()
    return json_response({"name": name, "count": count})


@demo.get("/items/<item_id>", summary="An item")
async def item(item_id: str) -> Response:
    return json_response({"id": item_id})


@demo.get("/boom", summary="Always fails")
async def boom() -> Response:
    raise RuntimeError("internal detail /etc/secret-path")


@demo.get("/domain", summary="Raises a mapped domain error")
async def domain() -> Response:
    raise WidgetMissing("gone")


@pytest.fixture
async def demo_client(start_node: StartNode) -> AsyncIterator[httpx.AsyncClient]:
    running = await start_node(routers=[demo], **{"server.max_body_bytes": 1024})
    async with httpx.AsyncClient(base_url=running.url) as http:
        yield http


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["title"]
    assert body["request_id"] == response.headers["x-request-id"]
    return dict(body)


async def test_generated_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    first = await client.get("/health")
    second = await client.get("/health")
    assert len(first.headers["x-request-id"]) == 32
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_valid_request_id_is_kept_and_invalid_one_replaced(client: httpx.AsyncClient) -> None:
    kept = await client.get("/nope", headers={"X-Request-ID": "trace-abc.123"})
    assert kept.headers["x-request-id"] == "trace-abc.123"
    assert kept.json()["request_id"] == "trace-abc.123"
    for bad in ["x" * 129, "has space", "new\u00e9line"]:
        replaced = await client.get("/health", headers=[(b"X-Request-ID", bad.encode("utf-8"))])
        assert replaced.headers["x-request-id"] != bad
        assert len(replaced.headers["x-request-id"]) == 32


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/no/such/route"), 404)
    assert body["instance"] == "/no/such/route"


async def test_wrong_method_is_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    assert_problem(response, 405)
    assert "GET" in response.headers["allow"]


async def test_malformed_json_is_400(demo_client: httpx.AsyncClient) -> None:
    response = await demo_client.post(
        "/echo", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 400)
    assert "Invalid JSON" in str(body["detail"])


async def test_wrong_type_is_422_naming_the_field(demo_client: httpx.AsyncClient) -> None:
    body = assert_problem(await demo_client.post("/echo", json={"name": "a", "count": "2"}), 422)
    assert body["field"] == "count"
    body = assert_problem(await demo_client.post("/echo", json={"name": "a", "colour": 1}), 422)
    assert body["field"] == "colour"
    ok = await demo_client.post("/echo", json={"name": "a", "count": 2})
    assert ok.json() == {"name": "a", "count": 2}


async def test_non_json_content_type_is_415(demo_client: httpx.AsyncClient) -> None:
    response = await demo_client.post("/echo", content=b"name=a", headers={"content-type": "text/plain"})
    assert_problem(response, 415)


async def test_body_over_the_limit_is_413(demo_client: httpx.AsyncClient) -> None:
    big = b'{"name": "' + b"x" * 2000 + b'"}'
    assert_problem(
        await demo_client.post("/echo", content=big, headers={"content-type": "application/json"}), 413
    )

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while streaming
        for _ in range(4):
            yield b"x" * 512

    streamed = await demo_client.post("/echo", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(streamed, 413)


async def test_unexpected_exception_is_500_without_internals(demo_client: httpx.AsyncClient) -> None:
    response = await demo_client.get("/boom")
    body = assert_problem(response, 500)
    assert "secret-path" not in response.text
    assert "RuntimeError" not in response.text
    assert body["title"] == "Internal Server Error"


async def test_registered_domain_error_maps_to_its_status(demo_client: httpx.AsyncClient) -> None:
    body = assert_problem(await demo_client.get("/domain"), 409)
    assert body["detail"] == "widget state: gone"


async def test_cors_preflight_and_simple_requests(start_node: StartNode) -> None:
    running: RunningNode = await start_node(**{"server.cors_origins": ["https://ui.example"]})
    async with httpx.AsyncClient(base_url=running.url) as http:
        preflight = await http.options(
            "/health",
            headers={
                "Origin": "https://ui.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "https://ui.example"
        assert preflight.headers["access-control-allow-headers"] == "authorization"
        simple = await http.get("/health", headers={"Origin": "https://ui.example"})
        assert simple.headers["access-control-allow-origin"] == "https://ui.example"
        assert "X-Request-ID" in simple.headers["access-control-expose-headers"]
        foreign = await http.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in foreign.headers
