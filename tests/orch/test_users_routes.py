"""Users, system tokens and the audit trail over HTTP (admin), against a real node."""

from __future__ import annotations

import httpx
import pytest

from orch.server import RunningNode

from .auth_helpers import bearer, login

pytestmark = pytest.mark.integration

PASSWORD = "bob-password-1"


async def _create_bob(http: httpx.AsyncClient, role: str = "viewer") -> httpx.Response:
    return await http.post("/users", json={"name": "bob", "password": PASSWORD, "role": role})


async def test_admin_creates_lists_and_gets_users(admin_client: httpx.AsyncClient) -> None:
    created = await _create_bob(admin_client)
    assert created.status_code == 201
    assert created.headers["location"] == "/users/bob"
    assert created.json()["role"] == "viewer" and created.json()["disabled"] is False
    assert "password" not in created.text and "hash" not in created.text
    names = [u["name"] for u in (await admin_client.get("/users")).json()["users"]]
    assert names == ["admin", "bob"]
    assert (await admin_client.get("/users/BOB")).json()["name"] == "bob"
    assert (await admin_client.get("/users/nobody")).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": "carol", "password": "short", "role": "viewer"}, 422, None),
        ({"name": "carol", "password": "password", "role": "viewer"}, 422, None),
        ({"name": "carol", "password": "é" * 40, "role": "viewer"}, 422, None),  # 80 bytes > 72
        ({"name": "carol", "password": "carol-password-1", "role": "system"}, 422, "role"),
        ({"name": "carol", "password": "carol-password-1", "role": "root"}, 422, "role"),
        ({"name": "has space", "password": "carol-password-1", "role": "viewer"}, 422, "name"),
        ({"name": "carol", "role": "viewer"}, 422, "password"),
        ({"name": "carol", "password": "carol-password-1", "role": "viewer", "x": 1}, 422, "x"),
    ],
)
async def test_bad_new_users_are_refused_with_a_clear_4xx(
    admin_client: httpx.AsyncClient, body: dict[str, object], status: int, field: str | None
) -> None:
    response = await admin_client.post("/users", json=body)
    assert response.status_code == status, response.text
    if field is not None:
        assert response.json()["field"] == field


async def test_a_duplicate_user_is_a_409(admin_client: httpx.AsyncClient) -> None:
    assert (await _create_bob(admin_client)).status_code == 201
    assert (await _create_bob(admin_client)).status_code == 409


async def test_disabling_a_user_revokes_its_tokens_and_enabling_lets_it_log_in(
    node: RunningNode, admin_client: httpx.AsyncClient
) -> None:
    await _create_bob(admin_client)
    bob = await login(node.url, "bob", PASSWORD)
    async with httpx.AsyncClient(base_url=node.url, headers=bearer(bob["access_token"])) as http:
        assert (await http.get("/tasks")).status_code == 200
        disabled = await admin_client.post("/users/bob/disable")
        assert disabled.status_code == 200 and disabled.json()["disabled"] is True
        assert (await http.get("/tasks")).status_code == 401
        refused = await http.post("/auth/login", json={"username": "bob", "password": PASSWORD})
        assert refused.status_code == 401
    assert (await admin_client.post("/users/bob/enable")).json()["disabled"] is False
    await login(node.url, "bob", PASSWORD)


async def test_password_reset_revokes_old_tokens_and_the_new_password_works(
    node: RunningNode, admin_client: httpx.AsyncClient
) -> None:
    await _create_bob(admin_client)
    old = await login(node.url, "bob", PASSWORD)
    reset = await admin_client.put("/users/bob/password", json={"password": "bob-new-password-2"})
    assert reset.status_code == 200
    async with httpx.AsyncClient(base_url=node.url) as http:
        assert (await http.get("/tasks", headers=bearer(old["access_token"]))).status_code == 401
        assert (
            await http.post("/auth/login", json={"username": "bob", "password": PASSWORD})
        ).status_code == 401
    await login(node.url, "bob", "bob-new-password-2")
    weak = await admin_client.put("/users/bob/password", json={"password": "1234"})
    assert weak.status_code == 422


async def test_role_change_takes_effect_at_the_next_login(
    node: RunningNode, admin_client: httpx.AsyncClient
) -> None:
    await _create_bob(admin_client)
    viewer = await login(node.url, "bob", PASSWORD)
    async with httpx.AsyncClient(base_url=node.url) as http:
        refused = await http.post("/tasks/x/cancel", headers=bearer(viewer["access_token"]))
        assert refused.status_code == 403
        changed = await admin_client.put("/users/bob/role", json={"role": "operator"})
        assert changed.json()["role"] == "operator"
        assert (await http.get("/tasks", headers=bearer(viewer["access_token"]))).status_code == 401
        operator = await login(node.url, "bob", PASSWORD)
        assert operator["role"] == "operator"
        allowed = await http.post("/tasks/x/cancel", headers=bearer(operator["access_token"]))
        assert allowed.status_code == 404  # authorised; the task just does not exist


async def test_system_tokens_are_issued_once_listed_without_the_token_and_revocable(
    node: RunningNode, admin_client: httpx.AsyncClient
) -> None:
    issued = await admin_client.post("/tokens", json={"name": "worker-ai-01", "ttl": 3600})
    assert issued.status_code == 201
    token, jti = issued.json()["token"], issued.json()["jti"]
    listed = (await admin_client.get("/tokens")).json()["tokens"]
    assert [(t["jti"], t["name"], t["revoked_at"]) for t in listed] == [(jti, "worker-ai-01", None)]
    assert token not in (await admin_client.get("/tokens")).text
    async with httpx.AsyncClient(base_url=node.url, headers=bearer(token)) as worker:
        assert (await worker.post("/cores/WORK_AI_01/claim", json={"wait": 0})).status_code == 204
        assert (await worker.get("/users")).status_code == 403
        assert (await admin_client.delete(f"/tokens/{jti}")).status_code == 204
        assert (await worker.post("/cores/WORK_AI_01/claim", json={"wait": 0})).status_code == 401
    assert (await admin_client.get("/tokens")).json()["tokens"][0]["revoked_at"] is not None
    assert (await admin_client.post("/tokens", json={"name": "w", "ttl": 0})).status_code == 422


async def test_the_audit_trail_records_security_events_and_verifies(
    node: RunningNode, admin_client: httpx.AsyncClient
) -> None:
    await _create_bob(admin_client)
    async with httpx.AsyncClient(base_url=node.url) as http:
        await http.post("/auth/login", json={"username": "bob", "password": "wrong-password"})
    events = (await admin_client.get("/audit", params={"limit": 1000})).json()["events"]
    types = [e["type"] for e in events]
    assert {"user_created", "login_succeeded", "login_failed"} <= set(types)
    assert all(PASSWORD not in e["data"] and "wrong-password" not in e["data"] for e in events)
    page = (await admin_client.get("/audit", params={"limit": 1})).json()
    assert len(page["events"]) == 1 and page["next_after"] == page["events"][0]["id"]
    assert (await admin_client.get("/audit", params={"limit": "lots"})).status_code == 422
    verified = (await admin_client.get("/audit/verify")).json()
    assert verified["ok"] is True and verified["checked"] >= len(events)
