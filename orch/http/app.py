"""`create_app(node)`: the Quart-Trio app, its routes, and the single exception -> problem+json mapping."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import orjson
from quart import Response, current_app, request
from quart_trio import QuartTrio

from orch.http.edge import ASGIApp, Edge, Receive, Scope, Send
from orch.http.errors import install_error_mappings
from orch.http.openapi import build_openapi
from orch.http.problems import PROBLEM_CONTENT_TYPE, ApiError, InternalError, problem_body, to_api_error
from orch.http.routing import Router, RouteSpec, install
from orch.logs import correlation_id

if TYPE_CHECKING:
    from orch.node import Node

__all__ = [
    "OrchApp",
    "api_error_for",
    "create_app",
    "current_node",
    "json_bytes",
    "json_response",
    "json_text",
    "problem_response",
]

_log = logging.getLogger("orch.http")


class OrchApp(QuartTrio):
    """The Quart-Trio app of one node; calls enter through the `Edge` middleware."""

    node: Node
    routes: list[RouteSpec]
    openapi: dict[str, Any]
    openapi_body: bytes  # `openapi` encoded once: the document is ~100 KB and never changes
    edge: Edge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        await self.edge(scope, receive, send)

    async def _quart(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.asgi_app(scope, receive, send)  # type: ignore[arg-type]


def current_node() -> Node:
    """The node serving the current request."""
    return cast(OrchApp, current_app).node


# Dates, times and dataclasses go to `default` (str), as with json.dumps(default=str), not orjson's own forms.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def json_bytes(data: Any) -> bytes:
    """`data` as the compact UTF-8 JSON every response uses (orjson: ~5x faster than json.dumps).

    Falls back to json.dumps for what orjson refuses (non-str keys, ints beyond 64 bits), so the output
    is what `json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)` gives, except that
    NaN and infinities become null (json would write the non-JSON tokens NaN / Infinity).
    """
    try:
        return orjson.dumps(data, default=str, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def json_text(data: Any) -> str:
    """`data` as the compact JSON text every response uses."""
    return json_bytes(data).decode()


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A compact JSON response."""
    body = json_bytes(data)
    return Response(body, status=status, headers=dict(headers or {}), content_type="application/json")


def problem_response(error: ApiError) -> Response:
    """The problem+json response for `error`, for the current request."""
    body = problem_body(error, instance=request.path, request_id=correlation_id.get())
    return Response(
        json.dumps(body, ensure_ascii=False, default=str),
        status=error.status,
        headers=error.headers,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def api_error_for(exc: Exception, scope: Mapping[str, Any]) -> ApiError:
    """The ApiError answering `exc` (InternalError when nothing maps it); logs 5xx answers."""
    error = to_api_error(exc)
    if error is None:
        _log.error("unhandled %s in %s %s", type(exc).__name__, scope["method"], scope["path"], exc_info=exc)
        return InternalError()
    if error.status >= 500:
        _log.warning("%s answered %d: %s", type(exc).__name__, error.status, error.detail)
    return error


async def _handle_error(exc: Exception) -> Response:
    return problem_response(api_error_for(exc, request.scope))


def _raw_routes(app: OrchApp) -> dict[tuple[str, str], ASGIApp]:
    """The hot routes the Edge serves without Quart (their Quart routes stay for the OpenAPI document)."""
    from orch.http.auth import Guard, route_guard
    from orch.http.raw_health import raw_health_routes
    from orch.http.routes_tasks import DispatchBatchEndpoint, DispatchEndpoint
    from orch.http.webhook import WebhookEndpoint

    timeout = float(app.config["BODY_TIMEOUT"])
    limit = app.node.config.server.max_body_bytes
    webhook = WebhookEndpoint(app.node, max_body=limit, body_timeout=timeout)

    def guard(rule: str) -> Guard:
        return route_guard(next(s for s in app.routes if (s.method, s.rule) == ("POST", rule)))

    dispatch = DispatchEndpoint(
        app.node, app._quart, guard("/dispatch"), max_body=limit, body_timeout=timeout
    )
    batch = DispatchBatchEndpoint(app.node, guard("/dispatch/batch"), max_body=limit, body_timeout=timeout)
    return {
        ("POST", "/webhook"): webhook,
        ("POST", "/dispatch"): dispatch,
        ("POST", "/dispatch/batch"): batch,
        **raw_health_routes(app.node),
    }


def create_app(node: Node, *, routers: Iterable[Router] = ()) -> OrchApp:
    """The app for `node`: the ops routes plus `routers` (tests may add their own)."""
    from orch.feeds.routes import feeds
    from orch.http.auth import install_auth
    from orch.http.ops import ops  # the route modules import this module for helpers
    from orch.http.routes_admin import admin
    from orch.http.routes_auth import audit_routes, auth_routes, token_routes, user_routes
    from orch.http.routes_cores import cores
    from orch.http.routes_locks import locks
    from orch.http.routes_monitor import monitor_routes
    from orch.http.routes_tasks import tasks
    from orch.http.routes_workers import workers
    from orch.http.webhook import webhook_routes

    install_error_mappings()
    app = OrchApp("orch", static_folder=None)
    app.config.update(
        MAX_CONTENT_LENGTH=node.config.server.max_body_bytes,
        PROPAGATE_EXCEPTIONS=False,
    )
    app.node = node
    security_routers = [auth_routes, user_routes, token_routes, audit_routes, webhook_routes]
    task_routers = [tasks, workers, locks, admin]
    task_routers.append(monitor_routes)  # alerts, silences, metric history, recoveries, rate limits
    task_routers.append(cores)  # core health, isolation, restore, re-queue
    app.routes = install(app, [ops, *security_routers, *task_routers, feeds, *routers])
    app.openapi = build_openapi(app.routes, version=node.version)
    app.openapi_body = json_text(app.openapi).encode()
    install_auth(app)  # also names the matched route for the edge's metrics and access log
    app.register_error_handler(Exception, _handle_error)
    app.edge = Edge(
        app._quart,
        metrics=node.metrics.http,
        cors_origins=node.config.server.cors_origins,
        access_log=node.config.server.access_log,
        raw_routes=_raw_routes(app),
    )
    return app
