"""Helpers for the tests that pin a raw Edge route's answers to its Quart route's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

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


# Headers compared by value; any other header (date, content-length, RateLimit counters) by presence.
COMPARED = ("content-type", "x-request-id", "ratelimit-policy", "www-authenticate", "retry-after")


def stable(value: Any, volatile: frozenset[str]) -> Any:
    """`value` without the `volatile` members and clocks (`*_at`), at any depth: they differ between calls."""
    if isinstance(value, dict):
        return {
            k: stable(v, volatile) for k, v in value.items() if k not in volatile and not k.endswith("_at")
        }
    if isinstance(value, list):
        return [stable(v, volatile) for v in value]
    return value


def answer_shape(answer: httpx.Response, volatile: frozenset[str]) -> dict[str, Any]:
    """What must be the same whichever way a JSON request was served."""
    return {
        "status": answer.status_code,
        "header_names": sorted({k.lower() for k in answer.headers} - {"date"}),
        "headers": {name: answer.headers.get(name) for name in COMPARED},
        "body": stable(answer.json(), volatile),
    }


def json_post(path: str, body: Any = None, *, content: bytes | None = None, **headers: str) -> Sender:
    """A POST of `body` as JSON (or of raw `content`) with request id ``req-1`` and `headers`."""

    async def send(http: httpx.AsyncClient) -> httpx.Response:
        request_headers = {"X-Request-ID": "req-1", **headers}
        if content is not None:
            return await http.post(path, content=content, headers=request_headers)
        return await http.post(path, json=body, headers=request_headers)

    return send
