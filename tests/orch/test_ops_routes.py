"""/health, /metrics and /openapi.json against a real node."""

from __future__ import annotations

import time

import httpx
import pytest
import trio
from prometheus_client.registry import Collector
from quart import Response

from orch.http import Router, json_response
from orch.http.routing import openapi_path
from orch.node import ComponentHealth
from orch.server import RunningNode

from .helpers import StartNode

pytestmark = pytest.mark.integration

extra = Router("extra")


@extra.get("/things/<thing_id>", summary="One thing")
async def thing(thing_id: str) -> Response:
    return json_response({"id": thing_id})


@extra.route("/things/<int:thing_id>/notes", methods=["POST", "PUT"], summary="Notes")
async def notes(thing_id: int) -> Response:
    return json_response({"id": thing_id})


async def test_health_reports_status_version_components_uptime_totals(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["version"]
    assert body["timestamp"].endswith("+00:00")
    assert body["uptime_seconds"] >= 0
    assert body["components"]["http"]["status"] == "up"
    assert body["totals"]["http_requests"] >= 0


async def test_health_is_503_when_a_component_is_down_or_degraded_is_200(node: RunningNode) -> None:
    async def degraded() -> ComponentHealth:
        return ComponentHealth("degraded", {"restarts": 3})

    node.node.add_health_probe("dispatcher", degraded)
    async with httpx.AsyncClient(base_url=node.url) as http:
        response = await http.get("/health")
        assert (response.status_code, response.json()["status"]) == (200, "degraded")
        assert response.json()["components"]["dispatcher"] == {"status": "degraded", "restarts": 3}

        async def broken() -> ComponentHealth:
            raise RuntimeError("db gone")

        node.node.add_health_probe("disk", broken)
        response = await http.get("/health")
        assert (response.status_code, response.json()["status"]) == (503, "unhealthy")
        assert response.json()["components"]["disk"] == {"status": "down", "error": "RuntimeError"}


async def test_health_is_503_for_a_request_in_flight_when_shutdown_begins(node: RunningNode) -> None:
    entered, release = trio.Event(), trio.Event()

    async def slow() -> ComponentHealth:
        entered.set()
        await release.wait()
        return ComponentHealth("up")

    node.node.add_health_probe("slow", slow)
    async with httpx.AsyncClient(base_url=node.url) as http, trio.open_nursery() as nursery:
        responses: list[httpx.Response] = []

        async def get() -> None:
            responses.append(await http.get("/health"))

        nursery.start_soon(get)
        await entered.wait()
        node.node.request_shutdown()
        release.set()
    assert responses[0].status_code == 503
    assert responses[0].json()["status"] == "shutting_down"


async def test_metrics_use_route_templates_never_raw_paths(start_node: StartNode) -> None:
    running = await start_node(routers=[extra])
    async with httpx.AsyncClient(base_url=running.url) as http:
        for thing_id in ("a1", "b2", "c3"):
            assert (await http.get(f"/things/{thing_id}")).status_code == 200
        await http.get("/random/path/1")
        await http.get("/random/path/2")
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'orch_http_requests_total{endpoint="/things/<thing_id>",method="GET",status="200"} 3.0' in text
    assert 'orch_http_requests_total{endpoint="<unmatched>",method="GET",status="404"} 2.0' in text
    assert "a1" not in text and "/random" not in text
    assert "orch_http_request_duration_seconds_bucket" in text
    assert "_created{" not in text and "_created " not in text  # no *_created series (label values may)


class SlowCollector(Collector):
    """A collector as slow as a big registry (~55 ms per 1,000 series, here 0.5 s)."""

    def collect(self):  # type: ignore[no-untyped-def]
        time.sleep(0.5)
        return []


async def test_metrics_render_does_not_stall_other_requests(node: RunningNode) -> None:
    node.node.metrics.registry.register(SlowCollector())
    async with httpx.AsyncClient(base_url=node.url) as http:
        await http.get("/health")  # connect first, so connection set-up is not measured
        done_at: dict[str, float] = {}
        # Client and server share this Trio loop: a blocked loop delays both, so measure completion
        # times from one common start rather than per-request durations.
        t0 = trio.current_time()

        async def get(name: str, path: str) -> None:
            assert (await http.get(path)).status_code == 200
            done_at[name] = trio.current_time() - t0

        async with trio.open_nursery() as nursery:
            nursery.start_soon(get, "scrape", "/metrics")
            await trio.sleep(0.05)
            nursery.start_soon(get, "health", "/health")
    assert done_at["scrape"] >= 0.5
    assert done_at["health"] < 0.3


async def test_concurrent_scrapes_share_one_render(node: RunningNode) -> None:
    node.node.metrics.registry.register(SlowCollector())
    async with httpx.AsyncClient(base_url=node.url) as http, trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(http.get, "/metrics")
    assert node.node.metrics.renders <= 2


async def test_every_route_is_in_the_openapi_document(start_node: StartNode) -> None:
    running = await start_node(routers=[extra])
    async with httpx.AsyncClient(base_url=running.url) as http:
        doc = (await http.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = {
        (openapi_path(rule.rule), method)
        for rule in running.app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert served == documented
    assert ("/things/{thing_id}/notes", "PUT") in documented
    params = doc["paths"]["/things/{thing_id}/notes"]["post"]["parameters"]
    assert {"name": "thing_id", "in": "path", "required": True, "schema": {"type": "integer"}} in params
    assert "application/problem+json" in doc["paths"]["/health"]["get"]["responses"]["503"]["content"]
