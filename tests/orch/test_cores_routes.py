"""Core endpoints against a real node: health, isolation with a fallback, restore, forced re-queue."""

from __future__ import annotations

import pytest

from orch.server import RunningNode

from .task_helpers import claim, dispatch, problem, role_client

pytestmark = pytest.mark.integration


async def test_an_isolated_core_hands_its_tasks_to_the_fallback_until_restored(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        task = await dispatch(ops, "ISO_A")
        isolated = await ops.post("/cores/ISO_A/isolate", json={"fallback": "ISO_B", "reason": "probe"})
        assert isolated.status_code == 200, isolated.text
        assert isolated.json()["isolated"] and isolated.json()["changed"]
        nothing = await worker.post("/cores/ISO_A/claim", json={"wait": 0.2})
        assert nothing.status_code == 204
        taken = await claim(worker, "ISO_B")
        assert taken["task"]["task_id"] == task["task_id"] and taken["task"]["core_id"] == "ISO_A"
        health = (await ops.get("/cores/ISO_A")).json()
        assert (health["isolated"], health["fallback"], health["claimed"]) == (True, "ISO_B", 1)
        listed = (await ops.get("/cores")).json()["cores"]
        assert any(c["core_id"] == "ISO_A" and c["isolated"] for c in listed)
        restored = (await ops.post("/cores/ISO_A/restore", json={})).json()
        assert restored["isolated"] is False and restored["changed"] is True
        await dispatch(ops, "ISO_A")
        assert (await claim(worker, "ISO_A"))["task"]["core_id"] == "ISO_A"


async def test_requeue_takes_back_a_cores_held_tasks(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        task = await dispatch(ops, "RQ_A")
        claimed = await claim(worker, "RQ_A")
        answer = await ops.post("/cores/RQ_A/requeue", json={"reason": "worker silent"})
        assert answer.json() == {"core_id": "RQ_A", "tasks": 1}
        now = (await ops.get(f"/tasks/{task['task_id']}")).json()
        assert now["status"] == "queued" and now["attempts"] == 1
        beat = await worker.post(
            f"/tasks/{task['task_id']}/heartbeat", json={"lease_token": claimed["lease_token"]}
        )
        assert problem(beat, 409)["type"].endswith("stale-lease")


async def test_core_changes_need_an_operator_and_valid_fields(node: RunningNode) -> None:
    async with role_client(node, "viewer") as viewer, role_client(node, "operator") as ops:
        problem(await viewer.post("/cores/X1/isolate", json={}), 403)
        assert (await viewer.get("/cores/X1")).status_code == 200
        assert problem(await ops.post("/cores/X1/isolate", json={"fallback": "X1"}), 422)
        assert problem(await ops.post("/cores/X1/isolate", json={"fallback": "bad core"}), 422)["field"] == (
            "fallback"
        )
        assert problem(await ops.post("/cores/X1/isolate", json={"nope": 1}), 422)["field"] == "nope"
