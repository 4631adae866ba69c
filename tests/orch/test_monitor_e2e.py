"""Issue #7's end-to-end acceptance on a real node: a 1 s monitor interval, short `for` durations, real
supervisor, real security actor, real notifier delivering to local HTTP and SMTP receivers.

How an actor is made to crash: the test builds the node with the normal actors plus one test actor,
``flaky``, a *temporary* child (the supervisor never restarts it itself) that crashes 0.3 s after every
start. That is a real crash in the real tree, observed through the node's real sample source
(`actor_down`) and restarted through the real recovery port (`Supervisor.restart_child`). A fault-
injection hook in the product (even dev-only) would add attack surface for the sake of a test; a fake
sample source would skip the parts worth testing (sampling the tree, restarting through it).
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Any

import trio

from orch.node import Node
from orch.wiring import actor_specs
from runtime import Actor, ChildSpec, Restart, worker

from .helpers import StartNode
from .monitor_helpers import (
    Received,
    client,
    http_receiver,
    rules_file,
    smtp_receiver,
    until,
    verify_standard_webhook,
)

RULES: dict[str, Any] = {
    "interval_s": 1,
    "system_metrics": False,
    "repeat_interval_s": 3600,
    "rules": [
        {
            "name": "ActorDown",
            "metric": "actor_down",
            "op": ">",
            "value": 0.5,
            "severity": "critical",
            "summary": "actor {actor} is down",
            "actions": ["restart-actor"],
        },
        {
            "name": "Throttled",
            "metric": "http_throttled_ratio",
            "op": ">",
            "value": 0.5,
            "for": 1,
            "severity": "critical",
            "summary": "{value:.0%} of requests throttled",
            "actions": ["rollback"],
        },
    ],
    "policies": [
        {
            "name": "restart-actor",
            "kind": "restart_actor",
            "backoff_initial_s": 1,
            "backoff_max_s": 2,
            "escalate_after": 3,
        },
        {"name": "rollback", "kind": "rollback", "rollback_window_s": 120},
    ],
}


class Flaky(Actor[None]):
    """Crashes 0.3 s after each start."""

    async def on_start(self) -> None:
        self.spawn(self._crash_soon)

    async def _crash_soon(self) -> None:
        await trio.sleep(0.3)
        raise RuntimeError("flaky by design")

    async def handle(self, message: None) -> None:
        """Accepts nothing useful."""


def with_flaky(node: Node) -> list[ChildSpec]:
    return [*actor_specs(node), worker("flaky", Flaky, restart=Restart.TEMPORARY)]


def _config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "monitoring.sample_interval": 1.0,
        "monitoring.rules_file": rules_file(tmp_path, RULES),
        **extra,
    }


async def test_a_crash_looping_actor_is_restarted_then_escalated(
    start_node: StartNode, tmp_path: Path
) -> None:
    node = await start_node(actors=with_flaky, **_config(tmp_path))
    async with await client(node, "admin") as http:

        async def escalated() -> list[dict[str, Any]] | None:
            records = (await http.get("/recoveries", params={"target": "flaky"})).json()["recoveries"]
            return records if any(r["outcome"] == "escalated" for r in records) else None

        records = list(reversed(await until(escalated, limit=30)))
        assert [(r["action"], r["outcome"]) for r in records] == [
            ("restart_actor", "ok"),
            ("restart_actor", "ok"),
            ("restart_actor", "ok"),
            ("escalate", "escalated"),
        ]
        assert [r["attempt"] for r in records[:3]] == [1, 2, 3]
        await trio.sleep(2.5)  # escalated: no more restarts, however long it stays down
        tree = (await http.get("/supervisor")).json()
        flaky = next(c for c in tree["children"] if c["id"] == "flaky")
        assert flaky["restarts"] == 3 and flaky["state"] == "failed"
        alerts = (await http.get("/alerts", params={"state": "firing"})).json()["alerts"]
        assert [a["labels"]["actor"] for a in alerts if a["rule"] == "ActorDown"] == ["flaky"]
        assert len((await http.get("/recoveries", params={"target": "flaky"})).json()["recoveries"]) == 4
    events = await node.node.database().events_after(0, limit=1000, subject="flaky")
    kinds = [(e.type, e.data.get("reason") or e.data.get("outcome")) for e in events]
    assert kinds.count(("actor.restarted", "manual")) == 3
    assert kinds.count(("recovery.executed", "ok")) == 3
    assert kinds.count(("recovery.executed", "escalated")) == 1


async def test_a_rate_limit_change_followed_by_throttling_is_rolled_back_and_notified(
    start_node: StartNode, tmp_path: Path, nursery: trio.Nursery
) -> None:
    received = Received()
    hook_url = await http_receiver(nursery, received)
    smtp_port = await smtp_receiver(nursery, received)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    notifications = {
        "notifications.webhook_url": hook_url,
        "notifications.webhook_secret": secret,
        "notifications.smtp_host": "127.0.0.1",
        "notifications.smtp_port": smtp_port,
        "notifications.smtp_security": "none",
        "notifications.email_from": "orch@example.test",
        "notifications.email_to": ["oncall@example.test"],
    }
    node = await start_node(**_config(tmp_path, **notifications))
    async with await client(node, "admin") as admin, await client(node, "viewer") as viewer:
        changed = await admin.put("/settings/rate-limits", json={"limits": {"read": "3/60"}})
        assert changed.status_code == 200 and changed.json()["version"] == 2
        statuses: list[int] = []
        with trio.fail_after(30):
            while not (429 in statuses and statuses[-1] == 200):  # throttled, then let through again
                statuses.append((await viewer.get("/alerts")).status_code)
                await trio.sleep(0.05)
        assert statuses[:3] == [200, 200, 200]
        limits = (await admin.get("/settings/rate-limits")).json()
        assert limits["limits"]["read"] == "1000000/60" and limits["version"] == 3
        assert [(v["version"], v["rolled_back"]) for v in limits["history"]] == [
            (3, False),
            (2, True),
            (1, False),
        ]
        records = (await admin.get("/recoveries", params={"target": "security.rate_limits"})).json()
        rollback = records["recoveries"][0]
        assert (rollback["action"], rollback["outcome"]) == ("rollback", "ok")
        assert "rollback of v2 to v1" in rollback["detail"]

    async def alert_delivered() -> bool:
        bodies = [b for b in received.json_bodies() if "Throttled" in str(b)]
        mails = [m for m in received.mails if b"Throttled" in m]
        return bool(bodies and mails)

    await until(alert_delivered, limit=20)
    assert received.requests
    for headers, body in received.requests:
        assert verify_standard_webhook(secret, headers, body)
        assert not verify_standard_webhook("whsec_" + base64.b64encode(b"x" * 24).decode(), headers, body)
    types = {b.get("type") for b in received.json_bodies()}
    assert "orch.alert.firing" in types and "orch.recovery" in types


HEARTBEAT_RULES: dict[str, Any] = {
    "interval_s": 1,
    "system_metrics": False,
    "rules": [
        {
            "name": "CoreHeartbeatLost",
            "metric": "core_heartbeat_age_seconds",
            "op": ">",
            "value": 2,
            "severity": "critical",
            "summary": "core {core}: no worker heartbeat for {value:.0f}s",
            "actions": ["requeue-core", "isolate-core"],
        }
    ],
    "policies": [
        {"name": "requeue-core", "kind": "requeue_core", "backoff_initial_s": 1},
        {"name": "isolate-core", "kind": "isolate_core", "restore_after_s": 3},
    ],
}


async def test_a_core_whose_worker_stops_heart_beating_is_isolated_and_its_task_requeued(
    start_node: StartNode, tmp_path: Path
) -> None:
    config = {
        "monitoring.sample_interval": 1.0,
        "monitoring.rules_file": rules_file(tmp_path, HEARTBEAT_RULES),
    }
    node = await start_node(**config)
    async with await client(node, "operator") as ops, await client(node, "system") as worker:
        dispatched = await ops.post("/dispatch", json={"core_id": "c1", "max_attempts": 5})
        assert dispatched.status_code in (200, 201, 202), dispatched.text
        task_id = dispatched.json()["task_id"]
        claim = await worker.post("/cores/c1/claim", json={"worker_id": "w1", "lease": 600, "wait": 5})
        assert claim.status_code == 200, claim.text
        token = claim.json()["lease_token"]
        # ... and the worker goes silent: its 600 s lease would hold the task for ten minutes.

        async def healed() -> list[dict[str, Any]] | None:
            body = (await ops.get("/recoveries", params={"target": "c1"})).json()["recoveries"]
            return body if {r["action"] for r in body} >= {"requeue_core", "isolate_core"} else None

        records = {r["action"]: r for r in await until(healed, limit=20)}
        assert records["requeue_core"]["outcome"] == "ok"
        assert "re-queued 1 task" in records["requeue_core"]["detail"]
        assert records["isolate_core"]["outcome"] == "ok"
        task = (await ops.get(f"/tasks/{task_id}")).json()
        assert task["status"] == "queued" and task["attempts"] == 1
        late = await worker.post(f"/tasks/{task_id}/heartbeat", json={"lease_token": token})
        assert late.status_code == 409  # the silent worker lost its lease
        # Isolated: a claim gets nothing while the core is out of rotation ...
        isolated = await worker.post("/cores/c1/claim", json={"worker_id": "w2", "wait": 0.5})
        assert isolated.status_code == 204

        # ... and once healthy for restore_after_s (no held task is silent), it is back in rotation.
        async def restored() -> bool:
            body = (await ops.get("/recoveries", params={"target": "c1"})).json()["recoveries"]
            return any(r["action"] == "restore_core" and r["outcome"] == "ok" for r in body)

        await until(restored, limit=20)
        again = await worker.post("/cores/c1/claim", json={"worker_id": "w2", "wait": 5})
        assert again.status_code == 200 and again.json()["task"]["task_id"] == task_id
