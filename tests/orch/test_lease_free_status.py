"""Lease-free status changes, hand-backs and the two kinds of 409 against a real node: an operator's PUT
/jobs/{id}/status, a signed webhook reporting without a lease, POST /tasks/{id}/release."""

from __future__ import annotations

import pytest

from orch.server import RunningNode

from .task_helpers import claim, dispatch, problem, report, role_client, wait_status
from .test_webhook import hooked, payload, post, x_signature

pytestmark = pytest.mark.integration

__all__ = ["hooked"]  # the signed-webhook node fixture


async def test_an_operator_marks_a_running_task_failed_and_its_worker_learns_it(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        task = await dispatch(ops, "LF1", max_attempts=2)
        claimed = await claim(worker, "LF1")
        assert (await report(worker, claimed, "running")).status_code == 200
        url = f"/jobs/{task['task_id']}/status"
        failed = await ops.put(url, json={"status": "failed", "error": "wedged", "reason": "ticket 42"})
        assert failed.status_code == 200, failed.text
        assert failed.json()["status"] == "retrying" and failed.json()["error"] == "wedged"
        beat = await worker.post(
            f"/tasks/{task['task_id']}/heartbeat", json={"lease_token": claimed["lease_token"]}
        )
        assert problem(beat, 409)["type"].endswith("stale-lease")
        events = (await ops.get(f"/jobs/{task['task_id']}/events")).json()["events"]
        marked = next(e for e in events if e["type"] == "task.failed")
        assert marked["data"]["lease_free"] is True and marked["data"]["detail"] == "ticket 42"
        assert marked["data"]["by"]  # the operator's name


async def test_operators_can_set_timed_out_dead_and_take_a_task_back(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        task = await dispatch(ops, "LF2", max_attempts=5)
        url = f"/jobs/{task['task_id']}/status"
        await claim(worker, "LF2")
        back = (await ops.put(url, json={"status": "queued"})).json()
        assert back["status"] == "queued" and back["attempts"] == 1  # taken back, attempt counted
        await claim(worker, "LF2")
        dead = await ops.put(url, json={"status": "dead", "error": "poison message"})
        assert dead.json()["status"] == "dead"
        revived = await ops.put(url, json={"status": "queued", "reset_attempts": False})
        assert revived.json()["status"] == "queued" and revived.json()["attempts"] == 2
        with_token = {"status": "dead", "lease_token": "x"}
        assert problem(await worker.put(url, json=with_token), 422)["field"] == "status"


async def test_a_lease_free_change_needs_an_operator(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        task = await dispatch(ops, "LF3")
        await claim(worker, "LF3")
        url = f"/jobs/{task['task_id']}/status"
        problem(await worker.put(url, json={"status": "succeeded"}), 403)
        assert (await ops.get(f"/tasks/{task['task_id']}")).json()["status"] == "claimed"


async def test_the_two_conflicts_have_distinct_problem_types(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        task = await dispatch(ops, "LF4")
        illegal = problem(await ops.post(f"/tasks/{task['task_id']}/requeue", json={}), 409)
        assert illegal["type"].endswith(":illegal-transition")
        assert (illegal["current"], illegal["target"]) == ("queued", "queued")
        claimed = await claim(worker, "LF4")
        stale = problem(await report(worker, {**claimed, "lease_token": "not-it"}, "succeeded"), 409)
        assert stale["type"].endswith(":stale-lease")
        assert illegal["type"] != stale["type"]


async def test_a_worker_hands_a_task_back_without_spending_an_attempt(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        task = await dispatch(ops, "LF5")
        claimed = await claim(worker, "LF5")
        await report(worker, claimed, "running")
        url = f"/tasks/{task['task_id']}/release"
        body = {"lease_token": claimed["lease_token"], "reason": "draining"}
        released = await worker.post(url, json=body)
        assert released.status_code == 200, released.text
        assert released.json()["status"] == "queued" and released.json()["attempts"] == 0
        assert problem(await worker.post(url, json=body), 409)["type"].endswith("stale-lease")
        assert problem(await worker.post(url, json={"reason": "x"}), 422)["field"] == "lease_token"
        problem(await ops.post(url, json=body), 403)  # the worker protocol is for system principals
        again = await claim(worker, "LF5")
        assert again["task"]["task_id"] == task["task_id"] and again["task"]["attempts"] == 1


async def test_a_signed_webhook_completes_a_running_task_without_a_lease(hooked: RunningNode) -> None:
    async with role_client(hooked, "operator") as ops, role_client(hooked, "system") as worker:
        task = await dispatch(ops, "LF6")
        claimed = await claim(worker, "LF6")
        await report(worker, claimed, "running")
        task_id = task["task_id"]
        body = payload(event="task.completed", task_id=task_id, data={"rows": 7})
        answer = await post(hooked, body, x_signature(body))
        assert answer.status_code == 200, answer.text
        assert answer.json()["applied"] is True and answer.json()["status"] == "succeeded"
        done = await wait_status(ops, task_id, "succeeded")
        assert done["result"] == {"rows": 7}
        events = (await ops.get(f"/jobs/{task_id}/events")).json()["events"]
        assert events[-1]["data"]["by"] == "webhook:signature"  # the X-Signature scheme
        repeat = payload(event="task.completed", task_id=task_id, data={"rows": 8})
        assert (await post(hooked, repeat, x_signature(repeat))).status_code == 200  # harmless repeat
        assert (await ops.get(f"/tasks/{task_id}")).json()["result"] == {"rows": 7}
        stale = await report(worker, claimed, "succeeded")
        assert problem(stale, 409)["type"].endswith("stale-lease")


async def test_a_webhook_cannot_complete_a_task_nobody_started(hooked: RunningNode) -> None:
    async with role_client(hooked, "operator") as ops:
        task = await dispatch(ops, "LF7")
        body = payload(event="task.completed", task_id=task["task_id"])
        refused = await post(hooked, body, x_signature(body))
        assert problem(refused, 409)["type"].endswith("illegal-transition")
        started = payload(event="task.failed", task_id=task["task_id"], data={"error": "x"})
        assert problem(await post(hooked, started, x_signature(started)), 409)["target"] == "failed"
