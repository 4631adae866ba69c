"""`kill -9` of `orch serve` between a webhook's 200 and its replay: the replay is still refused.

A real `orch serve` child process accepts signed webhooks from concurrent clients and is SIGKILLed while
requests are in flight; a second `orch serve` on the same data dir must answer 409 to every delivery the
first one acknowledged (X-Signature within its tolerance window, GitHub by delivery id).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
import trio

from .serve_process import start_serve, stop_serve

pytestmark = pytest.mark.integration

SIG_SECRET = "replay-x-signature-secret-0123456789"
GITHUB_SECRET = "replay-github-secret-0123456789abc"
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("ORCH_")},
    "ORCH_ADMIN_USER": "replay-admin",
    "ORCH_ADMIN_PASSWORD": "replay-admin-password-1",
    "ORCH_SECURITY__DEV_MODE": "true",
    "ORCH_SECURITY__BCRYPT_COST": "4",
    "ORCH_WEBHOOK_SECRET": SIG_SECRET,
    "ORCH_SECURITY__GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
    "ORCH_LOGGING__LEVEL": "WARNING",
}
CLIENTS = 8
KILL_AFTER_ACKS = 200

Delivery = tuple[bytes, dict[str, str]]


def x_signature(n: int) -> Delivery:
    body = json.dumps({"event": "ping", "n": n}).encode()
    t = int(time.time())
    digest = hmac.new(SIG_SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"X-Signature": f"t={t},v1={digest}"}


def github(body: bytes, delivery: str) -> Delivery:
    digest = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Delivery": delivery}


async def post(http: httpx.AsyncClient, delivery: Delivery) -> httpx.Response:
    body, headers = delivery
    return await http.post("/webhook", content=body, headers={"Content-Type": "application/json", **headers})


async def deliver_until_killed(url: str, process: trio.Process) -> list[Delivery]:
    """Post distinct deliveries from CLIENTS clients; SIGKILL the node once enough were acknowledged."""
    acked: list[Delivery] = []
    enough = trio.Event()

    async def client(c: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
            for i in range(10_000):  # bounded; the kill ends it long before
                delivery = x_signature(c * 100_000 + i)
                try:
                    response = await post(http, delivery)
                except httpx.TransportError:
                    return  # the node is gone
                assert response.status_code == 200, response.text
                acked.append(delivery)
                if len(acked) >= KILL_AFTER_ACKS:
                    enough.set()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for c in range(CLIENTS):
                nursery.start_soon(client, c)
            await enough.wait()
            process.send_signal(signal.SIGKILL)  # while deliveries are in flight
            await process.wait()
    return acked


async def test_webhooks_acknowledged_before_a_kill_9_are_refused_as_replays_after_restart(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    process, url = await start_serve(data_dir, ENV)
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            hub = await post(http, github(b'{"event":"ping","zen":"first"}', "delivery-1"))
        acked = await deliver_until_killed(url, process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert hub.status_code == 200, hub.text
    assert process.returncode == -signal.SIGKILL and len(acked) >= KILL_AFTER_ACKS

    again, url = await start_serve(data_dir, ENV)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
            statuses = [(await post(http, delivery)).status_code for delivery in acked]
            redelivered = await post(http, github(b'{"event":"ping","zen":"second"}', "delivery-1"))
            fresh = await post(http, x_signature(-1))
    finally:
        await stop_serve(again)
    assert statuses == [409] * len(acked), f"{statuses.count(200)} acknowledged deliveries replayed"
    assert redelivered.status_code == 409, redelivered.text
    assert fresh.status_code == 200, fresh.text
