"""GET /health (and HEAD) as a raw ASGI handler that the `Edge` calls directly, skipping Quart's request
machinery: load balancers and monitors poll it, so its cost is paid on every probe.

Same answers as the Quart route `orch.http.ops.health` (which stays registered for the OpenAPI document
and the 405s): the `HealthReport` document through `json_bytes`, 200 or 503, `Cache-Control: no-store`;
an error is problem+json through the one error table. HEAD is answered as GET: the server (as for the
Quart route) sends the headers and drops the body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orch.http.app import api_error_for, json_bytes
from orch.http.edge import ASGIApp, Receive, Scope, Send, send_json, send_problem

if TYPE_CHECKING:
    from orch.node import Node

__all__ = ["HealthEndpoint", "raw_health_routes"]

_NO_STORE = [(b"cache-control", b"no-store")]


class HealthEndpoint:
    """GET and HEAD /health for one node (the Edge sets the request id, counts and logs the answer)."""

    quart_free = True  # never hands the request to Quart: the Edge sends its answer without a shield

    def __init__(self, node: Node) -> None:
        self.node = node

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request; the request body, if any, is ignored (as the Quart route does)."""
        try:
            report = await self.node.health()
            body = json_bytes(report.to_json())
        except Exception as exc:  # what Quart's error handler does for the route (app._handle_error)
            await send_problem(send, scope, api_error_for(exc, scope))
            return
        status = 200 if report.ok else 503
        await send_json(send, status, body, headers=_NO_STORE)


def raw_health_routes(node: Node) -> dict[tuple[str, str], ASGIApp]:
    """The Edge's raw routes for /health: GET and HEAD served by one `HealthEndpoint`."""
    endpoint = HealthEndpoint(node)
    return {("GET", "/health"): endpoint, ("HEAD", "/health"): endpoint}
