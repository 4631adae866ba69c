"""Task endpoints against a real node: dispatch (single, idempotent, batch), list/get, cancel, requeue,
events and status changes, with their error answers (404, 409, 413, 415, 422 naming the field)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import trio

from orch.server import RunningNode

from .helpers import StartNode
from .task_helpers import claim, dispatch, problem, report, role_client, wait_status

pytestmark = pytest.mark.integration


async def test_dispatch_answers_201_with_the_seed_fields_and_a_location(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops:
        response = await ops.post(
            "/dispatch", json={"coreId": "WORK_AI_01", "priority": 5, "metadata": {"k": "v", "n": 2}}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "queued" and body["created"] is True
        assert (body["core_id"], body["priority"], body["metadata"]) == ("WORK_AI_01", 5, {"k": "v", "n": 2})
        assert "estimated_start" in body and body["queue_position"] == 0
        assert response.headers["Location"] == f"/tasks/{body['task_id']}"
        again = await ops.get(f"/tasks/{body['task_id']}")
        assert again.json()["task_id"] == body["task_id"]


async def test_the_same_idempotency_key_returns_the_existing_task_with_200(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops:
        first = await ops.post("/dispatch", json={"core_id": "C1"}, headers={"Idempotency-Key": "k-1"})
        again = await ops.post("/dispatch", json={"core_id": "C1", "idempotency_key": "k-1"})
        other = await ops.post("/dispatch", json={"core_id": "C1", "idempotency_key": "k-2"})
        assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
        assert again.json()["task_id"] == first.json()["task_id"] and again.json()["created"] is False
        assert other.json()["task_id"] != first.json()["task_id"]
        disagree = await ops.post(
            "/dispatch", json={"core_id": "C1", "idempotency_key": "a"}, headers={"Idempotency-Key": "b"}
        )
        assert problem(disagree, 422)["field"] == "idempotency_key"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "core_id"),
        ({"core_id": ""}, "core_id"),
        ({"core_id": "has space"}, "core_id"),
        ({"core_id": "C", "priority": 101}, "priority"),
        ({"core_id": "C", "priority": "5"}, "priority"),
        ({"core_id": "C", "max_attempts": 0}, "max_attempts"),
        ({"core_id": "C", "timeout": -1}, "timeout"),
        ({"core_id": "C", "metadata": []}, "metadata"),
        ({"core_id": "C", "delay": 5, "not_before": 1}, "delay"),
        ({"core_id": "C", "not_before": "tomorrow"}, "not_before"),
        ({"core_id": "C", "stay": "yes"}, "stay"),
        ({"core_id": "C", "wait": 0}, "wait"),
        ({"core_id": "C", "colour": "red"}, "colour"),
        ({"core_id": "A", "coreId": "B"}, "core_id"),
    ],
)
async def test_a_bad_dispatch_field_is_422_naming_it(
    node: RunningNode, body: dict[str, Any], field: str
) -> None:
    async with role_client(node, "operator") as ops:
        detail = problem(await ops.post("/dispatch", json=body), 422)
        assert detail["field"] == field, detail


async def test_malformed_wrong_type_and_oversized_bodies_are_4xx(start_node: StartNode) -> None:
    running = await start_node(**{"server.max_body_bytes": 2048})
    async with role_client(running, "operator") as ops:
        problem(
            await ops.post("/dispatch", content=b"{nope", headers={"Content-Type": "application/json"}), 400
        )
        problem(await ops.post("/dispatch", content=b"core=x", headers={"Content-Type": "text/plain"}), 415)
        problem(await ops.post("/dispatch", json=[1, 2]), 422)
        huge = {"core_id": "C", "metadata": {"blob": "x" * 4096}}
        problem(await ops.post("/dispatch", json=huge), 413)


async def test_delay_and_not_before_postpone_the_first_claim(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        later = await dispatch(ops, "DELAYED", delay=60)
        assert later["not_before"] > later["created_at"]
        response = await worker.post("/cores/DELAYED/claim", json={"wait": 0.2})
        assert response.status_code == 204
        iso = "2001-01-01T00:00:00+00:00"
        past = await dispatch(ops, "DELAYED", not_before=iso)
        assert (await claim(worker, "DELAYED"))["task"]["task_id"] == past["task_id"]


async def test_batch_dispatch_accepts_all_or_names_the_bad_item(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops:
        ok = await ops.post(
            "/dispatch/batch", json={"tasks": [{"core_id": "B1"}, {"coreId": "B2", "priority": 3}]}
        )
        assert ok.status_code == 201, ok.text
        tasks = ok.json()["tasks"]
        assert [t["core_id"] for t in tasks] == ["B1", "B2"] and all(t["created"] for t in tasks)
        bad = await ops.post(
            "/dispatch/batch", json={"tasks": [{"core_id": "B1"}, {"core_id": "B2", "priority": 1000}]}
        )
        assert problem(bad, 422)["field"] == "tasks.1.priority"
        assert problem(await ops.post("/dispatch/batch", json={"tasks": []}), 422)["field"] == "tasks"
        assert problem(await ops.post("/dispatch/batch", json={"tasks": [3]}), 422)["field"] == "tasks.0"
        listed = (await ops.get("/tasks", params={"core_id": "B2"})).json()["tasks"]
        assert len(listed) == 1  # the refused batch left nothing behind


async def test_list_filters_and_pages_with_a_cursor(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "viewer") as viewer:
        made = [(await dispatch(ops, "PAGED"))["task_id"] for _ in range(5)]
        await ops.post(f"/tasks/{made[0]}/cancel")
        seen: list[str] = []
        params: dict[str, Any] = {"core_id": "PAGED", "limit": 2}
        for _ in range(10):
            page = (await viewer.get("/tasks", params=params)).json()
            seen.extend(t["task_id"] for t in page["tasks"])
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        assert sorted(seen) == sorted(made) and len(seen) == 5
        queued = (await viewer.get("/tasks", params={"core_id": "PAGED", "status": "queued"})).json()["tasks"]
        assert {t["task_id"] for t in queued} == set(made[1:])
        assert problem(await viewer.get("/tasks", params={"status": "bogus"}), 422)["field"] == "status"
        assert problem(await viewer.get("/tasks", params={"limit": "0"}), 422)["field"] == "limit"


async def test_unknown_tasks_are_404_everywhere(node: RunningNode) -> None:
    async with role_client(node, "admin") as admin:
        problem(await admin.get("/tasks/nope"), 404)
        problem(await admin.post("/tasks/nope/cancel"), 404)
        problem(await admin.post("/tasks/nope/requeue"), 404)
        problem(await admin.get("/jobs/nope/events"), 404)
        problem(await admin.put("/jobs/nope/status", json={"status": "cancelled"}), 404)


async def test_cancel_a_queued_task_then_cancelling_a_finished_one_is_idempotent_and_requeue_is_409(
    node: RunningNode,
) -> None:
    async with role_client(node, "operator") as ops:
        task = await dispatch(ops, "CANCEL")
        cancelled = await ops.post(f"/tasks/{task['task_id']}/cancel", json={"reason": "not needed"})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["finished"] is True
        assert (await ops.post(f"/tasks/{task['task_id']}/cancel")).json()["status"] == "cancelled"
        problem(await ops.post(f"/tasks/{task['task_id']}/requeue"), 409)
        assert (
            problem(await ops.post(f"/tasks/{task['task_id']}/cancel", json={"why": 1}), 422)["field"]
            == "why"
        )


async def test_a_succeeded_task_cannot_be_cancelled(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        task = await dispatch(ops, "DONE")
        claimed = await claim(worker, "DONE")
        assert (await report(worker, claimed, "succeeded", result={"ok": True})).status_code == 200
        problem(await ops.post(f"/tasks/{task['task_id']}/cancel"), 409)


async def test_a_dead_task_is_requeued_with_a_fresh_budget(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        task = await dispatch(ops, "DEAD", max_attempts=1)
        claimed = await claim(worker, "DEAD")
        failed = await report(worker, claimed, "failed", error="boom")
        assert failed.json()["status"] == "dead" and failed.json()["error"] == "boom"
        requeued = await ops.post(f"/tasks/{task['task_id']}/requeue")
        assert requeued.status_code == 200 and requeued.json()["status"] == "queued"
        assert requeued.json()["attempts"] == 0
        again = await claim(worker, "DEAD")
        assert again["task"]["task_id"] == task["task_id"]


async def test_job_events_list_the_lifecycle_in_seq_order_and_page_with_after(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        task = await dispatch(ops, "EVENTS")
        claimed = await claim(worker, "EVENTS")
        await report(worker, claimed, "progress", progress={"pct": 50})
        await report(worker, claimed, "succeeded", result={"n": 1})
        events = (await ops.get(f"/jobs/{task['task_id']}/events")).json()["events"]
        types = [e["type"] for e in events]
        assert types[0] == "task.queued" and types[-1] == "task.succeeded"
        assert {"task.claimed", "task.running", "task.progress"} <= set(types)
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(seqs) and all(e["subject"] == task["task_id"] for e in events)
        after = (await ops.get(f"/jobs/{task['task_id']}/events", params={"after": seqs[1]})).json()["events"]
        assert [e["seq"] for e in after] == seqs[2:]
        problem(await ops.get(f"/jobs/{task['task_id']}/events", params={"after": "x"}), 422)


async def test_put_status_with_the_lease_token_reports_and_a_stale_token_is_409(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        task = await dispatch(ops, "PUT")
        claimed = await claim(worker, "PUT")
        url = f"/jobs/{task['task_id']}/status"
        running = await worker.put(url, json={"status": "running", "leaseToken": claimed["lease_token"]})
        assert running.status_code == 200 and running.json()["status"] == "running"
        problem(await worker.put(url, json={"status": "succeeded", "lease_token": "not-the-token"}), 409)
        done = await worker.put(url, json={"status": "succeeded", "lease_token": claimed["lease_token"]})
        assert done.json()["status"] == "succeeded"
        repeat = await worker.put(url, json={"status": "succeeded", "lease_token": claimed["lease_token"]})
        assert repeat.status_code == 200  # a retried final report is harmless
        problem(await worker.put(url, json={"status": "failed", "lease_token": claimed["lease_token"]}), 409)


async def test_put_status_without_a_token_is_an_operators_lifecycle_checked_change(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops:
        task = await dispatch(ops, "OPS")
        url = f"/jobs/{task['task_id']}/status"
        illegal = problem(await ops.put(url, json={"status": "succeeded"}), 409)  # still queued
        assert illegal["type"].endswith("illegal-transition")
        assert problem(await ops.put(url, json={"status": "done"}), 422)["field"] == "status"
        queued_with_token = {"status": "queued", "lease_token": "x"}
        assert problem(await ops.put(url, json=queued_with_token), 422)["field"] == "status"
        problem(await ops.put(url, json={"status": "queued"}), 409)  # only a dead task can be requeued
        cancelled = await ops.put(url, json={"status": "cancelled", "reason": "operator"})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


async def test_stay_keeps_the_request_open_until_the_task_ends(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        answers: list[httpx.Response] = []

        async def stay() -> None:
            answers.append(await ops.post("/dispatch", json={"core_id": "STAY", "stay": True, "wait": 30}))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stay)
            claimed = await claim(worker, "STAY")
            await trio.sleep(0.2)
            assert not answers  # still waiting while the task runs
            await report(worker, claimed, "succeeded", result={"answer": 42})
        (answer,) = answers
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] == "succeeded" and body["finished"] is True
        assert body["result"] == {"answer": 42} and "estimated_start" in body


async def test_stay_answers_with_the_current_state_when_its_wait_runs_out(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops:
        started = time.monotonic()
        response = await ops.post("/dispatch", json={"core_id": "NOBODY", "stay": True, "wait": 0.3})
        assert 0.3 <= time.monotonic() - started < 5
        assert response.status_code == 200
        assert (response.json()["status"], response.json()["finished"]) == ("queued", False)


async def test_stay_of_a_task_that_dies_answers_dead(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        answers: list[httpx.Response] = []

        async def stay() -> None:
            body = {"core_id": "STAY_DEAD", "stay": True, "max_attempts": 1}
            answers.append(await ops.post("/dispatch", json=body))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stay)
            claimed = await claim(worker, "STAY_DEAD")
            await report(worker, claimed, "failed", error="exit code 3")
        assert answers[0].json()["status"] == "dead"
        task = await wait_status(ops, answers[0].json()["task_id"], "dead")
        assert task["error"] == "exit code 3"


async def test_viewers_read_but_may_not_dispatch_or_cancel(node: RunningNode) -> None:
    async with role_client(node, "viewer") as viewer, role_client(node, "operator") as ops:
        task = await dispatch(ops, "ROLES")
        assert (await viewer.get(f"/tasks/{task['task_id']}")).status_code == 200
        problem(await viewer.post("/dispatch", json={"core_id": "ROLES"}), 403)
        problem(await viewer.post(f"/tasks/{task['task_id']}/cancel"), 403)
