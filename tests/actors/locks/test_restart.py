"""Node restarts: fences keep increasing, held leases survive until their TTL, old tokens still work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from actors.locks.actor import LockManager
from actors.locks.messages import (
    Acquire,
    GetLock,
    LeaseGrant,
    LockInfo,
    LockMsg,
    NotOwner,
    Release,
    ReleaseOutcome,
    ReleaseResult,
)
from actors.storage import Database
from runtime import ActorRef, open_actor

Locks = ActorRef[LockMsg]
Factory = Callable[[Database], Callable[[], LockManager]]


async def acquire(locks: Locks, resource: str, owner: str, ttl: float = 60.0) -> LeaseGrant:
    return await locks.ask(lambda r: Acquire(resource, owner, ttl, r))


async def release(locks: Locks, grant: LeaseGrant) -> ReleaseOutcome:
    result: ReleaseResult = await locks.ask(lambda r: Release(grant.resource, grant.token, r))
    return result.outcome


async def info(locks: Locks, resource: str) -> LockInfo:
    return await locks.ask(lambda r: GetLock(resource, r))


async def test_fences_keep_increasing_across_a_restart(
    db_path: Path, lock_clock: trio.testing.MockClock, open_manager: Factory
) -> None:
    async with Database.open(db_path) as db, open_actor(open_manager(db)) as locks:
        for _ in range(3):
            await release(locks, await acquire(locks, "gpu", "a"))
    async with Database.open(db_path) as db, open_actor(open_manager(db)) as locks:
        again = await acquire(locks, "gpu", "b")
        assert again.fence == 4
        assert (await info(locks, "gpu")).last_fence == 4


async def test_held_lease_survives_a_restart_until_its_ttl(
    db_path: Path, lock_clock: trio.testing.MockClock, open_manager: Factory
) -> None:
    async with Database.open(db_path) as db, open_actor(open_manager(db)) as locks:
        start = trio.current_time()
        held = await acquire(locks, "deploy", "a", ttl=30)
    await trio.sleep(10)  # the node is down for 10 s
    async with Database.open(db_path) as db, open_actor(open_manager(db)) as locks:
        (holder,) = (await info(locks, "deploy")).holders
        assert (holder.owner, holder.fence) == ("a", held.fence)
        assert holder.remaining == pytest.approx(20, abs=0.5)
        with pytest.raises(NotOwner):
            await locks.ask(lambda r: Release("deploy", "guess", r))
        with trio.fail_after(60):  # virtual seconds: a missed expiry fails instead of hanging
            following = await acquire(locks, "deploy", "b")
        assert trio.current_time() - start == pytest.approx(30, abs=0.5)
        assert following.fence == held.fence + 1
        events = await db.events_after(0, topics=["lock"])
    assert [e.type for e in events] == ["lock.acquired", "lock.refused", "lock.expired", "lock.acquired"]


async def test_lease_that_ran_out_while_down_expires_at_start_up(
    db_path: Path, lock_clock: trio.testing.MockClock, open_manager: Factory
) -> None:
    async with Database.open(db_path) as db, open_actor(open_manager(db)) as locks:
        await acquire(locks, "deploy", "a", ttl=5)
    await trio.sleep(60)
    async with Database.open(db_path) as db, open_actor(open_manager(db)) as locks:
        assert (await info(locks, "deploy")).holders == ()
        assert (await acquire(locks, "deploy", "b")).fence == 2
        events = await db.events_after(0, topics=["lock"])
    assert [e.type for e in events] == ["lock.acquired", "lock.expired", "lock.acquired"]


async def test_the_owner_token_still_releases_after_a_restart(
    db_path: Path, lock_clock: trio.testing.MockClock, open_manager: Factory
) -> None:
    async with Database.open(db_path) as db, open_actor(open_manager(db)) as locks:
        held = await acquire(locks, "repo", "a")
    async with Database.open(db_path) as db, open_actor(open_manager(db)) as locks:
        assert await release(locks, held) is ReleaseOutcome.RELEASED
        assert (await info(locks, "repo")).holders == ()
