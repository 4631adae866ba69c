"""Operator endpoints against a real node: the supervision tree, restarting one actor, queue statistics."""

from __future__ import annotations

import pytest

from orch.server import RunningNode

from .task_helpers import claim, dispatch, problem, role_client

pytestmark = pytest.mark.integration


async def test_supervisor_shows_the_tree_with_state_restarts_and_mailboxes(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops:
        response = await ops.get("/supervisor")
        assert response.status_code == 200, response.text
        tree = response.json()
        assert tree["id"] == "root" and tree["state"] == "running" and tree["uptime_seconds"] >= 0
        children = {c["id"]: c for c in tree["children"]}
        assert {"dispatcher", "locks"} <= set(children)
        dispatcher = children["dispatcher"]
        assert dispatcher["kind"] == "worker" and dispatcher["state"] == "running"
        assert dispatcher["restarts"] == 0 and dispatcher["last_failure"] is None
        assert dispatcher["mailbox"]["capacity"] > 0 and dispatcher["started_at"]


async def test_an_admin_restarts_one_actor_and_it_keeps_serving(node: RunningNode) -> None:
    async with role_client(node, "admin") as admin, role_client(node, "system") as worker:
        task = await dispatch(admin, "AFTER_RESTART")
        response = await admin.post("/supervisor/actors/dispatcher/restart")
        assert response.status_code == 200, response.text
        actor = response.json()["actor"]
        assert actor["id"] == "dispatcher" and actor["state"] == "running" and actor["restarts"] == 1
        assert (await claim(worker, "AFTER_RESTART"))["task"]["task_id"] == task["task_id"]
        events = (await admin.get(f"/jobs/{task['task_id']}/events")).json()["events"]
        assert [e["type"] for e in events] == ["task.queued", "task.claimed"]


async def test_restarting_an_unknown_actor_is_404_and_operators_may_not_restart(node: RunningNode) -> None:
    async with role_client(node, "admin") as admin, role_client(node, "operator") as ops:
        problem(await admin.post("/supervisor/actors/nobody/restart"), 404)
        problem(await ops.post("/supervisor/actors/locks/restart"), 403)
    async with role_client(node, "viewer") as viewer:
        problem(await viewer.get("/supervisor"), 403)


async def test_queues_report_depth_per_core_and_priority(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        for priority in (0, 0, 5):
            await dispatch(ops, "QSTATS", priority=priority)
        await claim(worker, "QSTATS")
        cores = {c["core_id"]: c for c in (await ops.get("/queues")).json()["cores"]}
        stats = cores["QSTATS"]
        assert stats["queued"] == 2 and stats["claimed"] == 1
        assert stats["queued_by_priority"] == {"0": 2}  # the priority 5 task went first
        assert stats["oldest_queued_age_s"] >= 0
