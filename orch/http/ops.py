"""Operational endpoints: /health, /metrics, /openapi.json."""

from __future__ import annotations

from typing import Any, cast

from quart import Response, current_app

from orch.http.app import OrchApp, current_node, json_response
from orch.http.routing import Router
from orch.metrics import CONTENT_TYPE

__all__ = ["ops"]

ops = Router("ops")

_COMPONENT: dict[str, Any] = {
    "type": "object",
    "properties": {"status": {"enum": ["up", "degraded", "down"]}},
    "required": ["status"],
}
HEALTH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"enum": ["healthy", "degraded", "unhealthy", "shutting_down"]},
        "timestamp": {"type": "string", "format": "date-time"},
        "version": {"type": "string"},
        "uptime_seconds": {"type": "number"},
        "components": {"type": "object", "additionalProperties": _COMPONENT},
        "totals": {"type": "object"},
    },
    "required": ["status", "timestamp", "version", "uptime_seconds", "components", "totals"],
}


@ops.get(
    "/health",
    summary="Node health",
    response_schema=HEALTH_SCHEMA,
    responses={200: "Healthy or degraded", 503: "A component is down, or the node is shutting down"},
)
async def health() -> Response:
    """Per-component health; 503 when any component is down or the node is draining. Probe results
    (database, actors' own probes, totals) may be up to 1 s old; supervised actors' states are current."""
    report = await current_node().health()
    return json_response(report.to_json(), 200 if report.ok else 503, {"Cache-Control": "no-store"})


@ops.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Needs a token allowed metrics.read (viewer, or a system token for scrapers) unless "
    "security.metrics_anonymous is set.",
    auth="metrics.read",
    content_type=CONTENT_TYPE,
    response_schema={"type": "string"},
    responses={200: "Prometheus text exposition format"},
)
async def metrics() -> Response:
    """Rendered in a worker thread so a scrape never stalls other requests."""
    data = await current_node().metrics.render()
    return Response(data, content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


@ops.get(
    "/openapi.json",
    summary="This API's OpenAPI 3.1 document",
    response_schema={"type": "object"},
    responses={200: "The OpenAPI document, generated from the route registry"},
)
async def openapi() -> Response:
    """Generated from the same registry the routes are installed from."""
    return Response(cast(OrchApp, current_app).openapi_body, content_type="application/json")
