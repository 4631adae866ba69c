"""Worker batches over HTTP: claim up to `max` tasks (long-poll), heartbeat and report many held tasks with
per-item results (stale tokens, unknown tasks and bad items fail only their item)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from orch.server import RunningNode

from .task_helpers import dispatch, problem, role_client

pytestmark = pytest.mark.integration


async def claims(worker: httpx.AsyncClient, core: str, **body: Any) -> list[dict[str, Any]]:
    response = await worker.post(f"/cores/{core}/claims", json=body)
    assert response.status_code == 200, response.text
    got: list[dict[str, Any]] = response.json()["claims"]
    return got


async def results(worker: httpx.AsyncClient, path: str, key: str, items: list[Any]) -> list[dict[str, Any]]:
    response = await worker.post(path, json={key: items})
    assert response.status_code == 200, response.text
    got: list[dict[str, Any]] = response.json()["results"]
    assert len(got) == len(items)
    return got


async def test_claims_takes_up_to_max_tasks_each_with_its_own_lease(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        ids = [(await dispatch(ops, "B1"))["task_id"] for _ in range(3)]
        first = await claims(worker, "B1", max=2, worker_id="wb")
        assert [c["task"]["task_id"] for c in first] == ids[:2]
        assert all(c["task"]["status"] == "claimed" and c["task"]["claimed_by"] == "wb" for c in first)
        assert first[0]["lease_token"] != first[1]["lease_token"]
        rest = await claims(worker, "B1", max=10, wait=0)
        assert [c["task"]["task_id"] for c in rest] == ids[2:]
        assert (await worker.post("/cores/B1/claims", json={"max": 5, "wait": 0.2})).status_code == 204


async def test_claims_long_polls_until_at_least_one_task_comes(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        got: list[httpx.Response] = []
        async with trio.open_nursery() as nursery:

            async def wait_for_work() -> None:
                got.append(await worker.post("/cores/BPOLL/claims", json={"max": 5, "wait": 20}))

            nursery.start_soon(wait_for_work)
            await trio.sleep(0.3)
            task = await dispatch(ops, "BPOLL")
        assert got[0].status_code == 200
        assert [c["task"]["task_id"] for c in got[0].json()["claims"]] == [task["task_id"]]


async def test_claims_refuses_bad_fields(node: RunningNode) -> None:
    async with role_client(node, "system") as worker:
        for body, field in (({"max": 0}, "max"), ({"max": 1001}, "max"), ({"wait": 61}, "wait")):
            assert problem(await worker.post("/cores/C/claims", json=body), 422)["field"] == field
        assert problem(await worker.post("/cores/%20bad/claims", json={}), 422)["field"] == "core_id"


async def test_heartbeats_answer_per_item_and_a_stale_token_fails_only_its_item(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        for _ in range(2):
            await dispatch(ops, "B2")
        a, b = await claims(worker, "B2", max=2)
        out = await results(
            worker,
            "/tasks/heartbeats",
            "heartbeats",
            [
                {"task_id": a["task"]["task_id"], "lease_token": a["lease_token"], "lease": 60},
                {"task_id": b["task"]["task_id"], "lease_token": "stale"},
                {"task_id": "no-such-task", "lease_token": "x"},
                {"task_id": b["task"]["task_id"], "lease_token": b["lease_token"], "progress": {"p": 1}},
                {"task_id": a["task"]["task_id"], "lease_token": a["lease_token"], "lease": -1},
                "not an object",
            ],
        )
        assert out[0]["ok"] and out[0]["task_id"] == a["task"]["task_id"] and not out[0]["cancel_requested"]
        assert out[0]["lease_expires_at"] > a["lease_expires_at"]
        assert not out[1]["ok"] and out[1]["error"]["status"] == 409
        assert out[1]["error"]["type"].endswith("stale-lease")
        assert not out[2]["ok"] and out[2]["error"]["status"] == 404
        assert out[3]["ok"]
        assert not out[4]["ok"] and out[4]["error"]["status"] == 422
        assert out[4]["error"]["field"] == "heartbeats.4.lease"
        assert not out[5]["ok"] and out[5]["error"]["field"] == "heartbeats.5"
        task_b = (await ops.get(f"/tasks/{b['task']['task_id']}")).json()
        assert task_b["progress"] == {"p": 1} and task_b["status"] == "claimed"


async def test_heartbeats_tell_of_a_cancel_request(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        await dispatch(ops, "B3")
        (held,) = await claims(worker, "B3", max=1)
        task_id = held["task"]["task_id"]
        assert (await ops.post(f"/tasks/{task_id}/cancel", json={})).status_code == 200
        item = {"task_id": task_id, "lease_token": held["lease_token"]}
        (out,) = await results(worker, "/tasks/heartbeats", "heartbeats", [item])
        assert out["ok"] and out["cancel_requested"]


async def test_reports_apply_each_item_on_its_own(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        for _ in range(3):
            await dispatch(ops, "B4", max_attempts=1)
        a, b, c = await claims(worker, "B4", max=3)
        out = await results(
            worker,
            "/tasks/reports",
            "reports",
            [
                {"task_id": a["task"]["task_id"], "lease_token": a["lease_token"], "status": "succeeded",
                 "result": {"n": 1}},
                {"task_id": b["task"]["task_id"], "lease_token": "stale", "status": "succeeded"},
                {"task_id": c["task"]["task_id"], "lease_token": c["lease_token"], "status": "failed",
                 "error": "boom"},
                {"task_id": b["task"]["task_id"], "lease_token": b["lease_token"], "status": "sprinted"},
                {"task_id": b["task"]["task_id"], "status": "succeeded"},
            ],
        )  # fmt: skip
        assert out[0]["ok"] and out[0]["task"]["status"] == "succeeded"
        assert out[0]["task"]["result"] == {"n": 1}
        assert not out[1]["ok"] and out[1]["error"]["status"] == 409
        assert out[2]["ok"] and out[2]["task"]["status"] == "dead"
        assert not out[3]["ok"] and out[3]["error"]["field"] == "reports.3.status"
        assert not out[4]["ok"] and out[4]["error"]["field"] == "lease_token"
        assert (await ops.get(f"/tasks/{b['task']['task_id']}")).json()["status"] == "claimed"


async def test_a_repeated_report_in_a_batch_never_completes_twice(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        await dispatch(ops, "B5")
        (held,) = await claims(worker, "B5", max=1)
        item = {"task_id": held["task"]["task_id"], "lease_token": held["lease_token"], "status": "succeeded"}
        first, again = await results(worker, "/tasks/reports", "reports", [item, item])
        assert first["ok"] and again["ok"] and again["task"]["status"] == "succeeded"
        events = (await ops.get(f"/jobs/{held['task']['task_id']}/events")).json()["events"]
        assert [e["type"] for e in events].count("task.succeeded") == 1


async def test_batch_bodies_must_be_non_empty_arrays(node: RunningNode) -> None:
    async with role_client(node, "system") as worker:
        for path, key in (("/tasks/heartbeats", "heartbeats"), ("/tasks/reports", "reports")):
            assert problem(await worker.post(path, json={key: []}), 422)["field"] == key
            assert problem(await worker.post(path, json={key: {}}), 422)["field"] == key
            assert problem(await worker.post(path, json={}), 422)["field"] == key
            too_many = [{"task_id": "t", "lease_token": "k", "status": "succeeded"}] * 1001
            assert problem(await worker.post(path, json={key: too_many}), 422)["field"] == key


async def test_batch_routes_need_the_worker_roles(node: RunningNode) -> None:
    async with role_client(node, "viewer") as viewer:
        assert (await viewer.post("/cores/C/claims", json={})).status_code == 403
        body = {"task_id": "t", "lease_token": "k"}
        assert (await viewer.post("/tasks/heartbeats", json={"heartbeats": [body]})).status_code == 403
        report = {**body, "status": "succeeded"}
        assert (await viewer.post("/tasks/reports", json={"reports": [report]})).status_code == 403
