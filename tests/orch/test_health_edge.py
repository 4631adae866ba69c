"""GET and HEAD /health are served by the Edge without Quart (`HealthEndpoint`): every answer — healthy,
degraded, 503, an error — equals the Quart route's (status, the headers that matter, body), and the
request is counted and logged under its route."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from orch.http.raw_health import raw_health_routes
from orch.node import ComponentHealth
from orch.server import RunningNode

from .auth_helpers import auth_headers
from .edge_helpers import Sender, both_ways
from .helpers import StartNode

pytestmark = pytest.mark.integration

GET = ("GET", "/health")
HEAD = ("HEAD", "/health")
# The health of the moment: the clock, and the request counters (the first call counts in the second).
VOLATILE = frozenset({"timestamp", "uptime_seconds", "totals"})
# Headers compared by value; any other header (date, content-length) by presence.
COMPARED = ("content-type", "cache-control", "x-request-id", "allow")


def shape(answer: httpx.Response) -> dict[str, Any]:
    """What must be the same whichever way the request was served (clocks and counters left out)."""
    body = answer.json() if answer.content else None
    if isinstance(body, dict) and "totals" in body:
        assert sorted(body["totals"]) == ["http_requests", "http_requests_in_flight"]
    return {
        "status": answer.status_code,
        "header_names": sorted({k.lower() for k in answer.headers} - {"date"}),
        "headers": {name: answer.headers.get(name) for name in COMPARED},
        "body": {k: v for k, v in body.items() if k not in VOLATILE} if isinstance(body, dict) else body,
    }


async def shapes(node: RunningNode, route: tuple[str, str], send: Sender) -> tuple[Any, Any]:
    raw, quart = await both_ways(node, route, send)
    return shape(raw), shape(quart)


def get(**headers: str) -> Sender:
    return lambda http: http.get("/health", headers={"X-Request-ID": "hc-1", **headers})


@pytest.fixture
async def node(start_node: StartNode) -> RunningNode:
    running = await start_node()
    assert set(raw_health_routes(running.node)) <= set(running.app.edge.raw_routes)  # the node serves it raw
    return running


async def test_a_healthy_node_answers_as_the_quart_route_would(node: RunningNode) -> None:
    raw, quart = await shapes(node, GET, get())
    assert raw == quart
    assert raw["status"] == 200 and raw["body"]["status"] == "healthy"
    assert raw["headers"]["cache-control"] == "no-store"
    assert raw["headers"]["x-request-id"] == "hc-1"


async def test_a_degraded_or_down_component_gives_the_same_200_or_503(node: RunningNode) -> None:
    async def degraded() -> ComponentHealth:
        return ComponentHealth("degraded", {"restarts": 3})

    async def down() -> ComponentHealth:
        return ComponentHealth("down", {"error": "disk full"})

    node.node.add_health_probe("restarting", degraded)
    raw, quart = await shapes(node, GET, get())
    assert raw == quart and (raw["status"], raw["body"]["status"]) == (200, "degraded")
    node.node.add_health_probe("disk", down)
    raw, quart = await shapes(node, GET, get())
    assert raw == quart and (raw["status"], raw["body"]["status"]) == (503, "unhealthy")


async def test_head_gets_the_same_headers_and_no_body(node: RunningNode) -> None:
    raw, quart = await both_ways(
        node, HEAD, lambda http: http.head("/health", headers={"X-Request-ID": "hc-1"})
    )
    assert shape(raw) == shape(quart)
    assert raw.status_code == 200 and raw.content == b""
    assert int(raw.headers["content-length"]) > 0  # the length GET would send, as Quart says it


async def test_a_failing_health_check_is_the_same_500_problem(
    node: RunningNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> Any:
        raise RuntimeError("supervisor gone")

    monkeypatch.setattr(node.node, "health", broken)
    raw, quart = await shapes(node, GET, get())
    assert raw == quart
    assert raw["status"] == 500
    assert raw["headers"]["content-type"] == "application/problem+json"
    assert raw["body"]["instance"] == "/health" and raw["body"]["request_id"] == "hc-1"


async def test_raw_health_checks_are_counted_and_logged_under_their_route(
    node: RunningNode, access_records: list[logging.LogRecord]
) -> None:
    async with httpx.AsyncClient(base_url=node.url) as http:
        assert (await http.get("/health")).status_code == 200
        assert (await http.head("/health")).status_code == 200
        metrics = (await http.get("/metrics", headers=await auth_headers(node, "admin"))).text
    for method in ("GET", "HEAD"):
        assert f'orch_http_requests_total{{endpoint="/health",method="{method}",status="200"}} 1.0' in metrics
    logged = [(r.method, r.route, r.status) for r in access_records if r.route == "/health"]  # type: ignore[attr-defined]
    assert logged == [("GET", "/health", 200), ("HEAD", "/health", 200)]


async def test_other_methods_on_health_still_go_through_the_router(node: RunningNode) -> None:
    async with httpx.AsyncClient(base_url=node.url) as http:
        answer = await http.post("/health")
    assert answer.status_code == 405
    assert answer.headers["content-type"] == "application/problem+json"
    assert "GET" in answer.headers["Allow"]
