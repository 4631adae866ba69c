"""Every registered route x every role: 403 exactly for the roles THE table refuses, 401 without a token.

The routes come from the node's own registry (`app.routes`), so a route added later is covered
automatically; the expected answer comes from `actors.security.roles.AUTHORISATION_TABLE`.
"""

from __future__ import annotations

import re

import httpx
import pytest
import trio

from actors.security.messages import AUTHORISATION_TABLE, Action, Role
from orch.http.routing import RouteSpec, openapi_path
from orch.server import RunningNode

from .auth_helpers import ROLES, bearer, token_for
from .helpers import StartNode

pytestmark = pytest.mark.integration

ANONYMOUS = {
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"),  # authenticates by the token it revokes
    ("POST", "/webhook"),  # authenticated by its signature
}


def _url(spec: RouteSpec) -> str:
    # Harmless values for path parameters: nothing by these names exists.
    return re.sub(r"\{[^}]+\}", "matrix-probe", openapi_path(spec.rule))


async def _status(http: httpx.AsyncClient, spec: RouteSpec, headers: dict[str, str]) -> int | None:
    """The status the node answers, or None when it is still working after 2 s (long-poll, stream)."""
    with trio.move_on_after(2.0):
        async with http.stream(spec.method, _url(spec), headers=headers, json={}) as response:
            return response.status_code
    return None


def _protected(running: RunningNode) -> list[RouteSpec]:
    return [s for s in running.app.routes if s.auth is not None and not s.websocket]


async def test_only_the_documented_routes_are_anonymous(start_node: StartNode) -> None:
    running = await start_node(**{"security.metrics_anonymous": False})
    anonymous = {(s.method, openapi_path(s.rule)) for s in running.app.routes if s.auth is None}
    assert anonymous == ANONYMOUS
    assert len(_protected(running)) >= 15


async def test_every_protected_route_answers_401_without_a_token(start_node: StartNode) -> None:
    running = await start_node(**{"security.metrics_anonymous": False})
    async with httpx.AsyncClient(base_url=running.url) as http:
        for spec in _protected(running):
            status = await _status(http, spec, {})
            assert status == 401, f"{spec.method} {spec.rule} answered {status} without a token"


async def test_every_route_refuses_exactly_the_roles_the_table_refuses(start_node: StartNode) -> None:
    running = await start_node(**{"security.metrics_anonymous": False})
    tokens = {role: await token_for(running, role) for role in ROLES}
    seen_actions: set[Action] = set()
    failures: list[str] = []
    async with httpx.AsyncClient(base_url=running.url) as http:
        for spec in _protected(running):
            action = Action(spec.auth or "")
            seen_actions.add(action)
            for role in ROLES:
                allowed = Role(role) in AUTHORISATION_TABLE[action]
                status = await _status(http, spec, bearer(tokens[role]))
                if allowed and status in (401, 403):
                    failures.append(
                        f"{role} {spec.method} {spec.rule} ({action}): {status}, expected allowed"
                    )
                if not allowed and status != 403:
                    failures.append(f"{role} {spec.method} {spec.rule} ({action}): {status}, expected 403")
    assert not failures, "\n".join(failures)
    # The routes exercise the table broadly: the four roles and most actions.
    assert len(seen_actions) >= 12
