"""Login, refresh rotation and reuse, logout, lockout and rate-limit answers, against a real node."""

from __future__ import annotations

import httpx
import pytest

from orch.config import ConfigError
from orch.security_wiring import rate_limits
from orch.server import RunningNode

from .auth_helpers import ADMIN_PASSWORD, ADMIN_USER, bearer, login
from .helpers import StartNode

pytestmark = pytest.mark.integration


async def test_login_answers_a_token_pair_that_opens_admin_routes(node: RunningNode) -> None:
    async with httpx.AsyncClient(base_url=node.url) as http:
        response = await http.post("/auth/login", json={"username": ADMIN_USER, "password": ADMIN_PASSWORD})
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        pair = response.json()
        assert pair["token_type"] == "Bearer" and pair["role"] == "admin"
        assert 0 < pair["expires_in"] <= 15 * 60
        users = await http.get("/users", headers=bearer(pair["access_token"]))
    assert users.status_code == 200
    assert [u["name"] for u in users.json()["users"]] == ["admin"]


@pytest.mark.parametrize(
    ("username", "password"),
    [("admin", "wrong-password"), ("nobody", "whatever-pass"), ("admin", "x" * 100), ("", "abc")],
)
async def test_bad_credentials_are_a_401_never_a_500(node: RunningNode, username: str, password: str) -> None:
    async with httpx.AsyncClient(base_url=node.url) as http:
        response = await http.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code in (401, 422)
    if response.status_code == 401:
        assert response.json()["detail"] == "invalid username or password"


async def test_refresh_rotates_and_reusing_the_old_refresh_token_revokes_the_session(
    node: RunningNode,
) -> None:
    first = await login(node.url, ADMIN_USER, ADMIN_PASSWORD)
    async with httpx.AsyncClient(base_url=node.url) as http:
        rotated = await http.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert rotated.status_code == 200
        second = rotated.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert (await http.get("/users", headers=bearer(second["access_token"]))).status_code == 200

        reuse = await http.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert reuse.status_code == 401
        assert "reuse" in reuse.json()["detail"]
        assert reuse.headers["www-authenticate"].startswith("Bearer")
        # The whole family is gone: the newest refresh token no longer works either.
        after = await http.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
        assert after.status_code == 401


async def test_logout_revokes_the_access_token_and_the_session(node: RunningNode) -> None:
    pair = await login(node.url, ADMIN_USER, ADMIN_PASSWORD)
    async with httpx.AsyncClient(base_url=node.url) as http:
        out = await http.post(
            "/auth/logout",
            json={"refresh_token": pair["refresh_token"]},
            headers=bearer(pair["access_token"]),
        )
        assert out.status_code == 204
        assert (await http.get("/users", headers=bearer(pair["access_token"]))).status_code == 401
        assert (
            await http.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        ).status_code == 401
        assert (await http.post("/auth/logout")).status_code == 401


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer  x", "Basic YWRtaW46YWRtaW4=", "Bearer a b", "Bearer not-a-jwt", "Token abc"],
)
async def test_missing_or_malformed_bearer_is_401_with_www_authenticate(
    node: RunningNode, header: str
) -> None:
    async with httpx.AsyncClient(base_url=node.url) as http:
        response = await http.get("/users", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"


async def test_calls_over_the_route_class_limit_get_429_and_every_answer_has_ratelimit_headers(
    start_node: StartNode,
) -> None:
    running = await start_node(**{"security.rate_limits": ["read=3/60", "write=100/60/2"]})
    pair = await login(running.url, ADMIN_USER, ADMIN_PASSWORD)
    async with httpx.AsyncClient(base_url=running.url, headers=bearer(pair["access_token"])) as http:
        reads = [await http.get("/users") for _ in range(4)]
        writes = [await http.post("/users/nobody/disable") for _ in range(3)]
    assert [r.status_code for r in reads] == [200, 200, 200, 429]
    assert [r.headers["ratelimit-policy"] for r in reads] == ['"read";q=3;w=60'] * 4
    assert [r.headers["ratelimit"].split(";")[1] for r in reads] == ["r=2", "r=1", "r=0", "r=0"]
    assert 15 <= int(reads[3].headers["retry-after"]) <= 20
    assert "retry-after" not in reads[0].headers
    assert [r.status_code for r in writes] == [404, 404, 429]  # burst 2, then 100/min
    assert writes[2].headers["ratelimit-policy"] == '"write";q=2;w=60'


def test_rate_limit_config_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"security\.rate_limits"):
        rate_limits(("write=lots",))
    assert rate_limits(("write=10/1s",))["write"].limit == 10


async def test_repeated_failures_lock_the_account_with_423_and_retry_after(start_node: StartNode) -> None:
    running = await start_node(**{"security.lockout_max_failures": 3})
    async with httpx.AsyncClient(base_url=running.url) as http:
        for _ in range(3):
            bad = await http.post("/auth/login", json={"username": "admin", "password": "wrong-password"})
            assert bad.status_code == 401
        locked = await http.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert locked.status_code == 423
    assert int(locked.headers["retry-after"]) >= 1
    assert "locked" in locked.json()["detail"]


async def test_too_many_auth_requests_from_one_client_get_429_with_ratelimit_headers(
    node: RunningNode,
) -> None:
    statuses = []
    async with httpx.AsyncClient(base_url=node.url) as http:
        for _ in range(40):  # the "auth" class allows 30 per minute per client
            response = await http.post("/auth/refresh", json={"refresh_token": "garbage"})
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
    assert statuses[:30] == [401] * 30
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["ratelimit-policy"] == '"auth";q=30;w=60'
    assert response.headers["ratelimit"].startswith('"auth";r=0;t=')
