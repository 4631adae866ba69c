"""OpenAPI 3.1 document generated from the route registry (never written by hand, so it stays true)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from orch.http.problems import PROBLEM_CONTENT_TYPE
from orch.http.routing import RouteSpec, openapi_path, path_params

__all__ = ["build_openapi"]

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "field": {"type": "string", "description": "The offending member (422)."},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["type", "title", "status"],
}

_REQUEST_ID = {
    "name": "X-Request-ID",
    "in": "header",
    "required": False,
    "description": "Correlation id: 1-128 of A-Z a-z 0-9 . _ : @ / + = -; generated when absent; echoed.",
    "schema": {"type": "string", "maxLength": 128},
}


def _problem_ref() -> dict[str, Any]:
    return {"content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _operation(spec: RouteSpec) -> dict[str, Any]:
    params: list[dict[str, Any]] = [{"$ref": "#/components/parameters/RequestId"}]
    params += [
        {"name": name, "in": "path", "required": True, "schema": {"type": kind}}
        for name, kind in path_params(spec.rule)
    ]
    params += [
        {
            "name": q.name,
            "in": "query",
            "required": q.required,
            "description": q.description,
            "schema": dict(q.schema),
        }
        for q in spec.query
    ]
    responses: dict[str, Any] = {}
    for status, text in sorted(spec.responses.items()):
        if status >= 400:
            responses[str(status)] = {"description": text, **_problem_ref()}
        elif spec.response_schema is not None and 200 <= status < 300:
            content = {spec.content_type: {"schema": dict(spec.response_schema)}}
            responses[str(status)] = {"description": text, "content": content}
        else:
            responses[str(status)] = {"description": text}
    responses.setdefault("4XX", {"description": "Client error", **_problem_ref()})
    responses.setdefault("5XX", {"description": "Server error", **_problem_ref()})
    op: dict[str, Any] = {
        "operationId": spec.endpoint.replace(".", "_"),
        "summary": spec.summary,
        "tags": [spec.tag],
        "parameters": params,
        "responses": responses,
    }
    if spec.description:
        op["description"] = spec.description
    if spec.request_schema is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": dict(spec.request_schema)}},
        }
    if spec.auth is not None:
        op["security"] = [{"bearer": []}]
        op["x-orch-action"] = spec.auth
    if spec.websocket:
        op["x-websocket"] = True
    return op


def build_openapi(specs: Iterable[RouteSpec], *, version: str) -> dict[str, Any]:
    """The OpenAPI document for `specs`."""
    paths: dict[str, dict[str, Any]] = {}
    for spec in specs:
        paths.setdefault(openapi_path(spec.rule), {})[spec.method.lower()] = _operation(spec)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "orch",
            "version": version,
            "description": "Orchestration for fleets of workers. Errors are RFC 9457 problem details.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Problem": _PROBLEM_SCHEMA},
            "parameters": {"RequestId": _REQUEST_ID},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
