"""The route registry: every endpoint is declared once, with the metadata its OpenAPI entry is built from.

    ops = Router("ops")

    @ops.get("/health", summary="Node health", responses={200: "Healthy", 503: "A component is down"})
    async def health() -> ResponseReturnValue: ...

`install(app, routers)` registers the views with Quart and returns the specs; `/openapi.json` is generated
from the same specs, so an undocumented route cannot exist (a test compares them with the URL map).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from quart_trio import QuartTrio

__all__ = ["QueryParam", "RouteSpec", "Router", "install", "openapi_path"]

View = TypeVar("View", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True, slots=True)
class QueryParam:
    """A documented query-string parameter."""

    name: str
    description: str = ""
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One documented operation (one method of one route)."""

    rule: str  # Quart rule syntax: /jobs/<job_id>/events
    method: str
    endpoint: str
    summary: str
    tag: str
    description: str = ""
    request_schema: Mapping[str, Any] | None = None
    response_schema: Mapping[str, Any] | None = None
    responses: Mapping[int, str] = field(default_factory=dict)
    query: tuple[QueryParam, ...] = ()
    content_type: str = "application/json"
    auth: str | None = None  # the security action it needs; None = anonymous
    websocket: bool = False


class Router:
    """Collects routes of one tag; nothing touches Quart until `install`."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.specs: list[RouteSpec] = []
        self._views: list[tuple[str, str, Sequence[str], Callable[..., Awaitable[Any]], bool]] = []

    def route(
        self,
        rule: str,
        *,
        methods: Sequence[str],
        summary: str,
        description: str = "",
        request_schema: Mapping[str, Any] | None = None,
        response_schema: Mapping[str, Any] | None = None,
        responses: Mapping[int, str] | None = None,
        query: Iterable[QueryParam] = (),
        content_type: str = "application/json",
        auth: str | None = None,
    ) -> Callable[[View], View]:
        """Declare a route; the decorated coroutine is the Quart view."""

        def decorator(view: View) -> View:
            endpoint = f"{self.tag}.{view.__name__}"
            for method in methods:
                self.specs.append(
                    RouteSpec(
                        rule=rule,
                        method=method.upper(),
                        endpoint=endpoint,
                        summary=summary,
                        tag=self.tag,
                        description=description or (view.__doc__ or "").strip(),
                        request_schema=request_schema,
                        response_schema=response_schema,
                        responses=dict(responses or {200: "OK"}),
                        query=tuple(query),
                        content_type=content_type,
                        auth=auth,
                    )
                )
            self._views.append((rule, endpoint, [m.upper() for m in methods], view, False))
            return view

        return decorator

    def get(self, rule: str, **kwargs: Any) -> Callable[[View], View]:
        """Shorthand for `route(rule, methods=["GET"], ...)`."""
        return self.route(rule, methods=["GET"], **kwargs)

    def post(self, rule: str, **kwargs: Any) -> Callable[[View], View]:
        """Shorthand for `route(rule, methods=["POST"], ...)`."""
        return self.route(rule, methods=["POST"], **kwargs)

    def put(self, rule: str, **kwargs: Any) -> Callable[[View], View]:
        """Shorthand for `route(rule, methods=["PUT"], ...)`."""
        return self.route(rule, methods=["PUT"], **kwargs)

    def delete(self, rule: str, **kwargs: Any) -> Callable[[View], View]:
        """Shorthand for `route(rule, methods=["DELETE"], ...)`."""
        return self.route(rule, methods=["DELETE"], **kwargs)

    def websocket(
        self, rule: str, *, summary: str, description: str = "", auth: str | None = None
    ) -> Callable[[View], View]:
        """Declare a websocket route (documented as a GET upgrade with `x-websocket: true`)."""

        def decorator(view: View) -> View:
            endpoint = f"{self.tag}.{view.__name__}"
            self.specs.append(
                RouteSpec(
                    rule=rule,
                    method="GET",
                    endpoint=endpoint,
                    summary=summary,
                    tag=self.tag,
                    description=description or (view.__doc__ or "").strip(),
                    responses={101: "Switching Protocols (websocket)"},
                    auth=auth,
                    websocket=True,
                )
            )
            self._views.append((rule, endpoint, ["GET"], view, True))
            return view

        return decorator

    def install(self, app: QuartTrio) -> None:
        """Register this router's views on `app`."""
        for rule, endpoint, methods, view, is_ws in self._views:
            if is_ws:
                app.add_websocket(rule, endpoint, view)
            else:
                # Quart answers HEAD and OPTIONS itself; they are not documented as operations.
                app.add_url_rule(rule, endpoint, view, methods=list(methods))


def install(app: QuartTrio, routers: Iterable[Router]) -> list[RouteSpec]:
    """Install every router; returns all specs (the OpenAPI source). Duplicate operations are a bug."""
    specs: list[RouteSpec] = []
    seen: set[tuple[str, str]] = set()
    for router in routers:
        router.install(app)
        for spec in router.specs:
            key = (openapi_path(spec.rule), spec.method)
            if key in seen:
                raise ValueError(f"route declared twice: {spec.method} {spec.rule}")
            seen.add(key)
            specs.append(spec)
    return specs


_CONVERTER = re.compile(r"<(?:(?P<conv>[a-z]+)(?:\([^)]*\))?:)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)>")


def openapi_path(rule: str) -> str:
    """`/jobs/<int:job_id>/events` -> `/jobs/{job_id}/events`."""
    return _CONVERTER.sub(lambda m: "{" + m.group("name") + "}", rule)


def path_params(rule: str) -> list[tuple[str, str]]:
    """(name, JSON schema type) of each variable part of `rule`."""
    kinds = {"int": "integer", "float": "number"}
    return [(m.group("name"), kinds.get(m.group("conv") or "", "string")) for m in _CONVERTER.finditer(rule)]
