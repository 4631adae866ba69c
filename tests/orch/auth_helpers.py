"""Tokens for tests against a real node: log in as the configured admin, create users per role, issue
system tokens — all over HTTP, the way clients do.

    headers = await auth_headers(node, "operator")     # {"Authorization": "Bearer ..."}
    token = await token_for(node, "system")             # a worker/integration token

The `start_node` fixture configures the first admin (ADMIN_USER / ADMIN_PASSWORD) and bcrypt cost 4.
"""

from __future__ import annotations

import weakref
from typing import Any

import httpx

from orch.node import Node
from orch.server import RunningNode

ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-test-password-1"
USER_PASSWORD = "test-user-password-1"

TEST_SECURITY: dict[str, Any] = {
    "security.dev_mode": True,  # bcrypt cost 4 is a dev-only setting
    "security.bcrypt_cost": 4,
    "security.admin_user": ADMIN_USER,
    "security.admin_password": ADMIN_PASSWORD,
    "security.metrics_anonymous": True,  # tests of /metrics's own auth switch it off
    # Load-style tests must not trip the per-principal defaults (tests of the limits set their own);
    # "auth" keeps its default (30/min per client).
    "security.rate_limits": [f"{c}=1000000/60" for c in ("default", "read", "write", "worker", "stream")],
}
"""Config overrides every test node gets (see conftest.start_node)."""

ROLES = ("admin", "operator", "viewer", "system")

_cache: weakref.WeakKeyDictionary[Node, dict[str, str]] = weakref.WeakKeyDictionary()


async def login(url: str, username: str, password: str) -> dict[str, Any]:
    """POST /auth/login; the token response (asserting success)."""
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for `token`."""
    return {"Authorization": f"Bearer {token}"}


async def token_for(node: RunningNode, role: str) -> str:
    """A token of `role` on `node` (cached per node): the admin's, a new user's, or a system token."""
    tokens = _cache.setdefault(node.node, {})
    if role in tokens:
        return tokens[role]
    if role == "admin":
        token = str((await login(node.url, ADMIN_USER, ADMIN_PASSWORD))["access_token"])
    else:
        admin = await token_for(node, "admin")
        async with httpx.AsyncClient(base_url=node.url, headers=bearer(admin)) as http:
            if role == "system":
                response = await http.post("/tokens", json={"name": "test-worker"})
                assert response.status_code == 201, response.text
                token = str(response.json()["token"])
            else:
                name = f"test-{role}"
                body = {"name": name, "password": USER_PASSWORD, "role": role}
                response = await http.post("/users", json=body)
                assert response.status_code == 201, response.text
                token = str((await login(node.url, name, USER_PASSWORD))["access_token"])
    tokens[role] = token
    return token


async def auth_headers(node: RunningNode, role: str = "admin") -> dict[str, str]:
    """`{"Authorization": "Bearer <token of role>"}` for `node`."""
    return bearer(await token_for(node, role))
