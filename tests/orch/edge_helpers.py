"""Helpers for the tests that pin a raw Edge route's answers to its Quart route's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from orch.server import RunningNode

Sender = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
"""One request, e.g. `lambda http: http.get("/health")`."""


async def both_ways(
    node: RunningNode, route: tuple[str, str], send: Sender
) -> tuple[httpx.Response, httpx.Response]:
    """`send(http)` served by the raw `route` (method, path), then by the Quart route (the Edge's raw
    route taken away for the call)."""
    edge = node.app.edge
    assert route in edge.raw_routes
    async with httpx.AsyncClient(base_url=node.url, timeout=30.0) as http:
        raw = await send(http)
        endpoint = edge.raw_routes.pop(route)
        try:
            quart = await send(http)
        finally:
            edge.raw_routes[route] = endpoint
    return raw, quart
