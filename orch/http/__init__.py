"""The node's HTTP front end: Quart-Trio app factory, problem+json errors, JSON body helpers, route registry.

Route modules declare endpoints on a `Router`, raise `ApiError` subclasses (or let mapped domain errors
escape), and read bodies with `read_json_object`. The mapping of exceptions to statuses happens once, in
`orch.http.app`, using `orch.http.problems`.
"""

from orch.http.app import OrchApp, create_app, current_node, json_response, problem_response
from orch.http.body import JsonObject, parse_json_object, read_json_object
from orch.http.routing import QueryParam, Router, RouteSpec

__all__ = [
    "JsonObject",
    "OrchApp",
    "QueryParam",
    "RouteSpec",
    "Router",
    "create_app",
    "current_node",
    "json_response",
    "parse_json_object",
    "problem_response",
    "read_json_object",
]
