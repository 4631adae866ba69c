"""Helpers for the task/worker/lock tests: role clients on a real node, and a scripted HTTP worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio

from orch.server import RunningNode

from .auth_helpers import auth_headers


@asynccontextmanager
async def role_client(node: RunningNode, role: str) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on `node` authenticated as `role` (admin, operator, viewer, system)."""
    headers = await auth_headers(node, role)
    async with httpx.AsyncClient(base_url=node.url, headers=headers, timeout=30.0) as http:
        yield http


async def dispatch(http: httpx.AsyncClient, core: str = "WORK_AI_01", **fields: Any) -> dict[str, Any]:
    """POST /dispatch; the answer (asserting 201)."""
    response = await http.post("/dispatch", json={"core_id": core, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def claim(http: httpx.AsyncClient, core: str = "WORK_AI_01", **fields: Any) -> dict[str, Any]:
    """POST /cores/{core}/claim; the claim (asserting 200)."""
    response = await http.post(f"/cores/{core}/claim", json={"wait": 5, **fields})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def report(
    http: httpx.AsyncClient, claimed: dict[str, Any], status: str, **fields: Any
) -> httpx.Response:
    """POST /tasks/{id}/report with the claim's lease token."""
    task_id = claimed["task"]["task_id"]
    body = {"lease_token": claimed["lease_token"], "status": status, **fields}
    return await http.post(f"/tasks/{task_id}/report", json=body)


async def wait_status(
    http: httpx.AsyncClient, task_id: str, *statuses: str, limit: float = 10.0
) -> dict[str, Any]:
    """Poll GET /tasks/{id} until its status is one of `statuses` (bounded)."""
    with trio.fail_after(limit):
        while True:
            response = await http.get(f"/tasks/{task_id}")
            assert response.status_code == 200, response.text
            task: dict[str, Any] = response.json()
            if task["status"] in statuses:
                return task
            await trio.sleep(0.02)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert a problem+json answer with `status`; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body
