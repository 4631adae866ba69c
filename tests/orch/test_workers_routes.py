"""The worker protocol over HTTP: long-poll claims (200/204, wait bound, disconnect, shutdown), heartbeats
(lease extension, cancel requests, stale leases) and reports."""

from __future__ import annotations

import time

import httpx
import pytest
import trio

from orch.server import RunningNode

from .helpers import StartNode
from .task_helpers import claim, dispatch, problem, report, role_client, wait_status

pytestmark = pytest.mark.integration


async def test_claim_hands_out_the_task_with_a_lease_and_204_when_nothing_comes(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        task = await dispatch(ops, "W1", metadata={"job": "x"})
        claimed = await claim(worker, "W1", worker_id="w-1", lease=10)
        assert claimed["task"]["task_id"] == task["task_id"]
        assert claimed["task"]["status"] == "claimed" and claimed["task"]["claimed_by"] == "w-1"
        assert claimed["lease_token"] and claimed["lease_expires_at"]
        started = time.monotonic()
        empty = await worker.post("/cores/W1/claim", json={"wait": 0.3})
        assert empty.status_code == 204 and empty.content == b""
        assert 0.25 <= time.monotonic() - started < 5


async def test_a_waiting_claim_gets_the_task_dispatched_meanwhile(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        got: list[httpx.Response] = []
        async with trio.open_nursery() as nursery:

            async def wait_for_work() -> None:
                got.append(await worker.post("/cores/LONGPOLL/claim", json={"wait": 20}))

            nursery.start_soon(wait_for_work)
            await trio.sleep(0.3)
            task = await dispatch(ops, "LONGPOLL")
        assert got[0].status_code == 200
        assert got[0].json()["task"]["task_id"] == task["task_id"]


async def test_claim_wait_0_answers_at_once(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        started = time.monotonic()
        assert (await worker.post("/cores/NOW/claim", json={"wait": 0})).status_code == 204
        assert time.monotonic() - started < 2
        await dispatch(ops, "NOW")
        assert (await worker.post("/cores/NOW/claim", json={"wait": 0})).status_code == 200


async def test_claim_refuses_bad_fields_and_bad_core_ids(node: RunningNode) -> None:
    async with role_client(node, "system") as worker:
        assert problem(await worker.post("/cores/C/claim", json={"wait": 61}), 422)["field"] == "wait"
        assert problem(await worker.post("/cores/C/claim", json={"lease": 0}), 422)["field"] == "lease"
        assert problem(await worker.post("/cores/C/claim", json={"wiat": 1}), 422)["field"] == "wiat"
        assert problem(await worker.post("/cores/%20bad/claim", json={}), 422)["field"] == "core_id"


async def test_a_claim_whose_client_disconnects_leaves_nothing_claimed(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        with trio.move_on_after(0.3):
            await worker.post("/cores/GONE/claim", json={"wait": 30})
        await trio.sleep(0.2)  # the node notices the disconnect and withdraws the claim
        task = await dispatch(ops, "GONE")
        await trio.sleep(0.2)
        assert (await ops.get(f"/tasks/{task['task_id']}")).json()["status"] == "queued"
        assert (await claim(worker, "GONE"))["task"]["task_id"] == task["task_id"]


async def test_a_waiting_claim_ends_promptly_when_the_node_shuts_down(start_node: StartNode) -> None:
    running = await start_node(**{"server.shutdown_grace": 10.0})
    async with role_client(running, "system") as worker:
        answers: list[httpx.Response] = []
        async with trio.open_nursery() as nursery:

            async def wait_for_work() -> None:
                answers.append(await worker.post("/cores/DRAIN/claim", json={"wait": 60}))

            nursery.start_soon(wait_for_work)
            await trio.sleep(0.3)
            started = time.monotonic()
            running.node.request_shutdown()
        assert answers[0].status_code == 204
        assert time.monotonic() - started < 3  # not the 60 s wait, nor the 10 s grace


async def test_heartbeats_extend_the_lease_and_carry_the_cancel_request(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        task = await dispatch(ops, "HB")
        claimed = await claim(worker, "HB", lease=5)
        url = f"/tasks/{task['task_id']}/heartbeat"
        first = await worker.post(url, json={"lease_token": claimed["lease_token"], "progress": {"pct": 10}})
        assert first.status_code == 200, first.text
        assert first.json()["cancel_requested"] is False
        assert first.json()["lease_expires_at"] >= claimed["lease_expires_at"]
        assert (await ops.get(f"/tasks/{task['task_id']}")).json()["progress"] == {"pct": 10}
        flagged = await ops.post(f"/tasks/{task['task_id']}/cancel")
        assert flagged.json()["status"] == "claimed" and flagged.json()["cancel_requested"] is True
        told = await worker.post(url, json={"lease_token": claimed["lease_token"]})
        assert told.json()["cancel_requested"] is True
        done = await report(worker, claimed, "cancelled")
        assert done.status_code == 200 and done.json()["status"] == "cancelled"


async def test_a_stale_lease_is_409_for_heartbeats_and_reports(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        task = await dispatch(ops, "STALE")
        claimed = await claim(worker, "STALE", lease=0.5)
        await wait_status(ops, task["task_id"], "queued", limit=10)  # the lease lapsed: back in the queue
        url = f"/tasks/{task['task_id']}/heartbeat"
        problem(await worker.post(url, json={"lease_token": claimed["lease_token"]}), 409)
        problem(await report(worker, claimed, "succeeded"), 409)
        second = await claim(worker, "STALE")
        assert second["lease_token"] != claimed["lease_token"]
        assert (await report(worker, second, "succeeded")).status_code == 200


async def test_heartbeat_and_report_validate_their_bodies(node: RunningNode) -> None:
    async with role_client(node, "system") as worker:
        assert problem(await worker.post("/tasks/t/heartbeat", json={}), 422)["field"] == "lease_token"
        bad_lease = {"lease_token": "x", "lease": -1}
        assert problem(await worker.post("/tasks/t/heartbeat", json=bad_lease), 422)["field"] == "lease"
        problem(await worker.post("/tasks/t/heartbeat", json={"lease_token": "x"}), 404)
        no_token = {"status": "succeeded"}
        assert problem(await worker.post("/tasks/t/report", json=no_token), 422)["field"] == "lease_token"
        cancel_no_token = {"status": "cancelled"}  # operators cancel elsewhere; workers prove their lease
        assert (
            problem(await worker.post("/tasks/t/report", json=cancel_no_token), 422)["field"] == "lease_token"
        )


async def test_operators_may_not_use_the_worker_protocol(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops:
        problem(await ops.post("/cores/C/claim", json={"wait": 0}), 403)
        problem(await ops.post("/tasks/t/heartbeat", json={"lease_token": "x"}), 403)


async def test_many_concurrent_claimers_never_share_a_task(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        created = await ops.post("/dispatch/batch", json={"tasks": [{"core_id": "MANY"}] * 40})
        ids = {t["task_id"] for t in created.json()["tasks"]}
        got: list[str] = []

        async def claimer() -> None:
            while True:
                response = await worker.post("/cores/MANY/claim", json={"wait": 0.3})
                if response.status_code == 204:
                    return
                got.append(response.json()["task"]["task_id"])

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(claimer)
        assert sorted(got) == sorted(ids)
