"""Signed webhooks: each client holds one claimed task (its own core) and posts `task.progress`
deliveries for it, signed `X-Signature: t=<unix>,v1=<HMAC-SHA256(secret, "{t}.{body}")>` with the
node's webhook secret. Every acknowledged delivery must have left a `task.progress` event. Baseline:
the same body to `POST /echo`."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from bench.harness.load import Call, ClientEnv, Done, Group, HttpAnswer, OpFailed
from bench.harness.report import Check, ScenarioResult, TargetCheck
from bench.harness.runner import NODE, Bench, Options
from bench.harness.verify import stored_values
from bench.scenarios.common import PostEcho

__all__ = ["SignedProgress", "run", "sign"]

GROUP = "POST /webhook (signed)"


def sign(secret: str, body: bytes, at: int) -> str:
    """The X-Signature header value."""
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def _expect(response: HttpAnswer, status: int) -> None:
    if response.status_code != status:
        raise OpFailed(f"HTTP {response.status_code}", response.text[:300])


@dataclass(frozen=True, slots=True)
class SignedProgress:
    """Set-up (with the plan's system token): dispatch one task to a fresh core HOOK_<client>_<nonce>,
    claim it. Each call: one signed `task.progress` delivery for that task.

    The core is new on every open (warm-up and each run open again): a core reused across runs still
    holds the earlier run's claimed task for its hour-long lease, and its claim answered 204."""

    secret: str = field(repr=False)

    @asynccontextmanager
    async def open(self, env: ClientEnv) -> AsyncIterator[Call]:
        """Own a claimed task for the run."""
        core = f"HOOK_{env.client_id:04d}_{os.urandom(4).hex()}"
        json_headers = {"Content-Type": "application/json"}
        created = await env.http.request(
            "POST", "/dispatch", json.dumps({"core_id": core}).encode(), json_headers
        )
        _expect(created, 201)
        claim = json.dumps({"worker_id": f"hook-{env.client_id}", "lease": 3600, "wait": 5}).encode()
        claimed = await env.http.request("POST", f"/cores/{core}/claim", claim, json_headers)
        _expect(claimed, 200)
        task_id, lease = claimed.json()["task"]["task_id"], claimed.json()["lease_token"]

        async def call(seq: int) -> Done:
            body = json.dumps(
                {"event": "task.progress", "task_id": task_id, "lease_token": lease, "data": {"seq": seq}}
            ).encode()
            headers = {**json_headers, "X-Signature": sign(self.secret, body, int(time.time()))}
            _expect(await env.http.request("POST", "/webhook", body, headers), 200)
            return Done(acks=(f"{task_id}|{seq}",))

        yield call


def run(options: Options) -> ScenarioResult:
    """`python -m bench webhooks`."""
    with Bench("webhooks", options) as bench:
        if not bench.has_route("/webhook", "post"):
            bench.skip("node POST /webhook: not served yet")
            return bench.result
        acks: list[str] = []
        for clients in options.clients:
            for run_index in range(options.runs):
                for target in bench.targets(run_index):
                    is_node = target.name == NODE
                    op = SignedProgress(bench.credentials.webhook_secret) if is_node else PostEcho()
                    headers = bench.system_headers() if is_node else {}
                    load, _ = bench.measure(
                        target, [Group(GROUP, op, clients)], run=run_index, headers=headers
                    )
                    if is_node:
                        acks += load.groups[GROUP].acks
        bench.stop_node()
        stored = int(
            stored_values(bench.db_path, "SELECT COUNT(*) FROM events WHERE type = 'task.progress'")[0]
        )
        bench.result.checks.append(
            Check(
                "every acknowledged webhook left a task.progress event",
                stored >= len(acks) > 0,
                f"{len(acks):,} acknowledged (measured runs), {stored:,} progress events (incl. warm-up)",
            )
        )
        errors = sum(m.errors for m in bench.result.runs)
        bench.result.checks.append(Check("no failed requests", errors == 0, f"{errors} errors in all runs"))
        bench.result.finish()
        row = bench.result.row(NODE, GROUP)
        if row is not None:
            bench.result.targets += [
                TargetCheck("signed webhooks/s", row.rps, ">=", 1000, "/s"),
                TargetCheck("signed webhook p99", row.latency.p99_ms, "<", 50, " ms"),
            ]
    return bench.result
