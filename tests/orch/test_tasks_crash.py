"""`kill -9` of `orch serve` during a dispatch load loses no acknowledged task.

A real `orch serve` child process takes concurrent dispatches; it is SIGKILLed mid-load; a second
`orch serve` on the same data dir must list every task whose dispatch was answered 201 exactly once
(tasks whose answer was lost in the crash may or may not exist: they were never acknowledged)."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest
import trio

from .serve_process import start_serve

pytestmark = pytest.mark.integration

ADMIN, PASSWORD = "crash-admin", "crash-admin-password-1"
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("ORCH_")},
    "ORCH_ADMIN_USER": ADMIN,
    "ORCH_ADMIN_PASSWORD": PASSWORD,
    "ORCH_SECURITY__DEV_MODE": "true",
    "ORCH_SECURITY__BCRYPT_COST": "4",
    "ORCH_LOGGING__LEVEL": "WARNING",
}
CLIENTS = 16
KILL_AFTER_ACKS = 400


async def admin_token(url: str) -> str:
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/auth/login", json={"username": ADMIN, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def load_until_killed(url: str, token: str, process: trio.Process) -> list[str]:
    """Dispatch from CLIENTS concurrent clients; SIGKILL the node once enough were acknowledged."""
    acked: list[str] = []
    enough = trio.Event()

    async def client(n: int) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10.0) as http:
            for i in range(10_000):  # bounded; the kill ends it long before
                try:
                    response = await http.post(
                        "/dispatch", json={"core_id": "CRASH", "metadata": {"c": n, "i": i}}
                    )
                except httpx.TransportError:
                    return  # the node is gone
                if response.status_code == 201:
                    acked.append(response.json()["task_id"])
                    if len(acked) >= KILL_AFTER_ACKS:
                        enough.set()
                else:
                    assert response.status_code in (429, 503), response.text

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for n in range(CLIENTS):
                nursery.start_soon(client, n)
            await enough.wait()
            process.send_signal(signal.SIGKILL)  # while requests are in flight
            await process.wait()
    return acked


async def list_all(url: str, token: str) -> list[str]:
    ids: list[str] = []
    params: dict[str, str | int] = {"core_id": "CRASH", "limit": 1000}
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        for _ in range(1000):
            page = (await http.get("/tasks", params=params)).json()
            ids.extend(t["task_id"] for t in page["tasks"])
            if page["next_cursor"] is None:
                return ids
            params["cursor"] = page["next_cursor"]
    raise AssertionError("too many pages")


async def test_kill_9_of_orch_serve_during_a_dispatch_load_loses_no_acknowledged_task(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    process, url = await start_serve(data_dir, ENV)
    try:
        acked = await load_until_killed(url, await admin_token(url), process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == -signal.SIGKILL
    assert len(acked) >= KILL_AFTER_ACKS and len(set(acked)) == len(acked)

    again, url = await start_serve(data_dir, ENV)
    try:
        token = await admin_token(url)
        stored = await list_all(url, token)
        counts = Counter(stored)
        missing = [task_id for task_id in acked if counts[task_id] != 1]
        assert not missing, f"{len(missing)} acknowledged tasks lost or duplicated, e.g. {missing[:3]}"
        assert max(counts.values()) == 1
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
            for task_id in acked[-5:]:  # the last acknowledged ones also kept their event
                events = (await http.get(f"/jobs/{task_id}/events")).json()["events"]
                assert [e["type"] for e in events][:1] == ["task.queued"]
    finally:
        again.send_signal(signal.SIGTERM)
        with trio.move_on_after(15):
            await again.wait()
        if again.returncode is None:
            again.kill()
            await again.wait()
