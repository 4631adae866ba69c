"""Hostile bodies for the task, worker and lock endpoints: whatever arrives, the answer is never a 5xx.

A seeded generator mixes the real field names (and their camelCase aliases) with junk names and values of
every JSON type, nested and extreme; each case is reproducible from its seed."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from orch.server import RunningNode

from .task_helpers import dispatch, role_client

pytestmark = pytest.mark.integration

FIELDS = [
    "core_id", "coreId", "priority", "timeout", "metadata", "stay", "wait", "idempotency_key",
    "idempotencyKey", "max_attempts", "maxAttempts", "not_before", "notBefore", "delay", "tasks",
    "status", "lease_token", "leaseToken", "result", "error", "progress", "reason", "reset_attempts",
    "worker_id", "lease", "owner", "ttl", "mode", "token", "by", "junk", "",
]  # fmt: skip


def value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(12 if depth < 2 else 9)
    match kind:
        case 0:
            return None
        case 1:
            return rng.choice([True, False])
        case 2:
            return rng.choice([0, -1, 1, 2**63, -(2**63), 10**30, 3, 60, 61, 100, 101])
        case 3:
            return rng.choice([0.0, -0.5, 1e308, 1e-300, 0.001, 59.999, 3600.5])
        case 4:
            return rng.choice(["", "x", "WORK_AI_01", "a b", "é" * 300, "x" * 5000, "queued", "succeeded"])
        case 5:
            return rng.choice(["cancelled", "shared", "exclusive", "2026-01-01T00:00:00+00:00", "nan"])
        case 6:
            return rng.choice(["\x00", "../etc", "1e309", "-1", "true", "{}"])
        case 7:
            return rng.choice(["cancelled", "running", "progress", "failed", "queued"])
        case 8:
            return rng.randrange(-5, 5)
        case 9:
            return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
        case 10:
            return {rng.choice(FIELDS): value(rng, depth + 1) for _ in range(rng.randrange(4))}
        case _:
            return [{"core_id": value(rng, depth + 1)} for _ in range(rng.randrange(3))]


def body(rng: random.Random) -> dict[str, Any]:
    return {rng.choice(FIELDS): value(rng) for _ in range(rng.randrange(6))}


async def test_random_bodies_never_get_a_5xx(node: RunningNode) -> None:
    async with role_client(node, "admin") as admin, role_client(node, "system") as worker:
        task = (await dispatch(admin, "FUZZ"))["task_id"]
        targets = [
            (admin, "POST", "/dispatch"),
            (admin, "POST", "/dispatch/batch"),
            (admin, "POST", f"/tasks/{task}/cancel"),
            (admin, "POST", f"/tasks/{task}/requeue"),
            (admin, "PUT", f"/jobs/{task}/status"),
            (worker, "POST", "/cores/FUZZ/claim"),
            (worker, "POST", f"/tasks/{task}/heartbeat"),
            (worker, "POST", f"/tasks/{task}/report"),
            (admin, "POST", "/locks/fuzz/acquire"),
            (admin, "POST", "/locks/fuzz/release"),
            (admin, "POST", "/locks/fuzz/extend"),
        ]
        failures: list[str] = []
        for seed in range(400):
            rng = random.Random(seed)
            http, method, path = rng.choice(targets)
            payload = body(rng)
            wait = payload.get("wait")
            if path in ("/dispatch", "/cores/FUZZ/claim", "/locks/fuzz/acquire") and (
                wait is None or (isinstance(wait, int | float) and not isinstance(wait, bool) and wait > 0.05)
            ):
                payload["wait"] = 0.05  # keep long-polls (claim, stay, lock waits) short; junk waits stay
            response = await http.request(method, path, content=json.dumps(payload).encode(),
                                          headers={"Content-Type": "application/json"})  # fmt: skip
            if response.status_code >= 500:
                failures.append(f"seed {seed}: {method} {path} {payload!r} -> {response.status_code}")
        assert not failures, "\n".join(failures[:5])


async def test_random_query_strings_never_get_a_5xx(node: RunningNode) -> None:
    async with role_client(node, "admin") as admin:
        for seed in range(150):
            rng = random.Random(seed)
            path = rng.choice(["/tasks", "/locks", "/jobs/x/events", "/queues", "/supervisor"])
            params = {
                rng.choice(["status", "core_id", "cursor", "limit", "after", "owner", "prefix"]): str(
                    value(rng)
                )
                for _ in range(rng.randrange(4))
            }
            response = await admin.get(path, params=params)
            assert response.status_code < 500, (seed, path, params, response.text)
