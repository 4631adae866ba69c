"""Lock endpoints against a real node: acquire (at once or waiting), release, extend, get, list, and the
409/422 answers of refused requests."""

from __future__ import annotations

import time

import httpx
import pytest
import trio

from orch.server import RunningNode

from .task_helpers import problem, role_client

pytestmark = pytest.mark.integration


async def test_acquire_get_extend_release_round_trip(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops:
        grant = await ops.post("/locks/gpu-box-1/acquire", json={"owner": "alice", "ttl": 30})
        assert grant.status_code == 200, grant.text
        lease = grant.json()
        assert (lease["resource"], lease["owner"], lease["mode"]) == ("gpu-box-1", "alice", "exclusive")
        assert lease["token"] and lease["fence"] >= 1 and lease["expires_at"]
        info = (await ops.get("/locks/gpu-box-1")).json()
        assert info["held"] is True and info["holders"][0]["owner"] == "alice"
        assert info["holders"][0]["fence"] == lease["fence"] and "token" not in info["holders"][0]
        extended = await ops.post("/locks/gpu-box-1/extend", json={"token": lease["token"], "by": 60})
        assert extended.status_code == 200 and extended.json()["remaining"] > 60
        released = await ops.post("/locks/gpu-box-1/release", json={"token": lease["token"]})
        assert released.json() == {"resource": "gpu-box-1", "outcome": "released"}
        again = await ops.post("/locks/gpu-box-1/release", json={"token": lease["token"]})
        assert again.json()["outcome"] == "already_released"
        free = (await ops.get("/locks/gpu-box-1")).json()
        assert free["held"] is False and free["last_fence"] == lease["fence"]


async def test_fences_increase_and_a_held_lock_is_409_without_wait(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops:
        first = (await ops.post("/locks/repo/acquire", json={"owner": "a"})).json()
        refused = problem(await ops.post("/locks/repo/acquire", json={"owner": "b"}), 409)
        assert refused["type"].endswith("lock-unavailable")
        await ops.post("/locks/repo/release", json={"token": first["token"]})
        second = (await ops.post("/locks/repo/acquire", json={"owner": "b"})).json()
        assert second["fence"] > first["fence"]


async def test_a_waiting_acquire_is_granted_when_the_holder_releases(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops:
        held = (await ops.post("/locks/slot/acquire", json={"owner": "a"})).json()
        answers: list[httpx.Response] = []
        async with trio.open_nursery() as nursery:

            async def wait_for_it() -> None:
                answers.append(await ops.post("/locks/slot/acquire", json={"owner": "b", "wait": 20}))

            nursery.start_soon(wait_for_it)
            await trio.sleep(0.3)
            assert (await ops.get("/locks/slot")).json()["waiters"] == 1
            await ops.post("/locks/slot/release", json={"token": held["token"]})
        granted = answers[0].json()
        assert answers[0].status_code == 200 and granted["owner"] == "b" and granted["waited"] > 0.2
        assert granted["fence"] > held["fence"]


async def test_a_wait_that_runs_out_is_409_and_leaves_no_waiter(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops:
        await ops.post("/locks/busy/acquire", json={"owner": "a"})
        started = time.monotonic()
        problem(await ops.post("/locks/busy/acquire", json={"owner": "b", "wait": 0.3}), 409)
        assert 0.3 <= time.monotonic() - started < 5
        assert (await ops.get("/locks/busy")).json()["waiters"] == 0


async def test_release_and_extend_with_a_wrong_token_are_409(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops:
        lease = (await ops.post("/locks/cas/acquire", json={"owner": "a", "ttl": 10})).json()
        body = problem(await ops.post("/locks/cas/release", json={"token": "forged"}), 409)
        assert body["type"].endswith("lock-not-owner")
        problem(await ops.post("/locks/cas/extend", json={"token": "forged", "by": 5}), 409)
        assert (await ops.get("/locks/cas")).json()["holders"][0]["fence"] == lease["fence"]
        problem(await ops.post("/locks/free/release", json={"token": "nothing"}), 409)


async def test_an_expired_lease_cannot_be_extended(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops:
        lease = (await ops.post("/locks/short/acquire", json={"owner": "a", "ttl": 0.2})).json()
        await trio.sleep(0.4)
        assert (await ops.get("/locks/short")).json()["held"] is False
        problem(await ops.post("/locks/short/extend", json={"token": lease["token"], "by": 5}), 409)


async def test_list_filters_by_owner_and_prefix(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops, role_client(node, "viewer") as viewer:
        for resource, owner in (("db/primary", "a"), ("gpu-1", "a"), ("gpu-2", "b")):
            resource_path = resource.replace("/", "-")
            await ops.post(f"/locks/{resource_path}/acquire", json={"owner": owner})
        every = [lock["resource"] for lock in (await viewer.get("/locks")).json()["locks"]]
        assert every == ["db-primary", "gpu-1", "gpu-2"]
        mine = (await viewer.get("/locks", params={"owner": "a", "prefix": "gpu"})).json()["locks"]
        assert [lock["resource"] for lock in mine] == ["gpu-1"]
        problem(await viewer.post("/locks/gpu-3/acquire", json={"owner": "v"}), 403)


async def test_shared_holders_coexist(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops:
        one = await ops.post("/locks/cache/acquire", json={"owner": "r1", "mode": "shared"})
        two = await ops.post("/locks/cache/acquire", json={"owner": "r2", "mode": "shared"})
        assert one.status_code == two.status_code == 200
        assert len((await ops.get("/locks/cache")).json()["holders"]) == 2
        problem(await ops.post("/locks/cache/acquire", json={"owner": "w"}), 409)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ttl": 0}, "ttl"),
        ({"ttl": 86_401}, "ttl"),
        ({"priority": 101}, "priority"),
        ({"wait": 301}, "wait"),
        ({"mode": "upgrade"}, "mode"),
        ({"owner": ""}, "owner"),
        ({"ownr": "x"}, "ownr"),
    ],
)
async def test_bad_acquire_fields_are_422_naming_them(
    node: RunningNode, body: dict[str, object], field: str
) -> None:
    async with role_client(node, "operator") as ops:
        assert problem(await ops.post("/locks/r/acquire", json=body), 422)["field"] == field


async def test_the_owner_defaults_to_the_callers_name(node: RunningNode) -> None:
    async with role_client(node, "system") as worker:
        lease = (await worker.post("/locks/auto/acquire")).json()
        assert lease["owner"] == "test-worker"  # the system token's name (tests/orch/auth_helpers.py)
