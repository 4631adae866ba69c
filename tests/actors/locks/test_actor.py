"""The lock manager actor on a real SQLite file: grants, queues, expiry, events, statistics."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import trio
import trio.testing

from actors.locks.actor import LockManager
from actors.locks.messages import (
    Acquire,
    Extend,
    ExtendResult,
    GetLock,
    LeaseGrant,
    ListLocks,
    LockExpired,
    LockInfo,
    LockMode,
    LockMsg,
    LockNotHeld,
    LockStatistics,
    LockStats,
    LockUnavailable,
    NotOwner,
    Release,
    ReleaseOutcome,
    ReleaseResult,
)
from actors.storage import Database, StoredEvent, Tx
from runtime import ActorRef, ActorStopped, open_actor

Locks = ActorRef[LockMsg]
ManagerFactory = Callable[[Database], Callable[[], LockManager]]


async def acquire(
    locks: Locks,
    resource: str,
    owner: str,
    ttl: float = 60.0,
    *,
    priority: int = 0,
    wait: bool = True,
    mode: LockMode = LockMode.EXCLUSIVE,
) -> LeaseGrant:
    return await locks.ask(lambda r: Acquire(resource, owner, ttl, r, priority, wait, mode))


async def release(locks: Locks, grant: LeaseGrant) -> ReleaseOutcome:
    result: ReleaseResult = await locks.ask(lambda r: Release(grant.resource, grant.token, r))
    return result.outcome


async def info(locks: Locks, resource: str) -> LockInfo:
    return await locks.ask(lambda r: GetLock(resource, r))


async def stats(locks: Locks) -> LockStatistics:
    return await locks.ask(LockStats)


async def until(locks: Locks, resource: str, predicate: Callable[[LockInfo], bool]) -> None:
    """Poll the actor's view of ``resource``: the states in between are not events one could wait on."""
    with trio.fail_after(30):
        while True:
            if predicate(await info(locks, resource)):
                return
            await trio.sleep(0.5)


async def lock_events(db: Database) -> list[StoredEvent]:
    return await db.events_after(0, topics=["lock"])


async def test_grant_and_release_are_durable_events_with_increasing_fences(
    locks: Locks, db: Database, lock_clock: trio.testing.MockClock
) -> None:
    first = await acquire(locks, "gpu-1", "worker-a")
    # Acknowledged means committed: the lease row is on disk before the reply.
    rows = await db.read(lambda c: c.execute("SELECT owner, fence FROM locks").fetchall())
    assert rows == [("worker-a", 1)]
    assert await release(locks, first) is ReleaseOutcome.RELEASED
    second = await acquire(locks, "gpu-1", "worker-b")
    assert (first.fence, second.fence) == (1, 2)
    events = await lock_events(db)
    assert [(e.type, e.subject, e.data["fence"]) for e in events] == [
        ("lock.acquired", "gpu-1", 1),
        ("lock.released", "gpu-1", 1),
        ("lock.acquired", "gpu-1", 2),
    ]
    assert all(first.token not in str(e.data) for e in events), "the owner token leaked into an event"


async def test_waiter_is_granted_when_the_holder_releases(
    locks: Locks, lock_clock: trio.testing.MockClock
) -> None:
    holder = await acquire(locks, "repo", "a")
    got: list[LeaseGrant] = []

    async def wait_for_it() -> None:
        got.append(await acquire(locks, "repo", "b"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait_for_it)
        await trio.sleep(1)
        assert (await info(locks, "repo")).waiters == 1
        await release(locks, holder)
    assert got[0].fence == holder.fence + 1
    assert got[0].waited == pytest.approx(1.0, abs=0.2)


async def test_wait_false_on_a_held_resource_is_unavailable(
    locks: Locks, lock_clock: trio.testing.MockClock
) -> None:
    await acquire(locks, "slot", "a")
    with pytest.raises(LockUnavailable):
        await acquire(locks, "slot", "b", wait=False)
    assert (await info(locks, "slot")).waiters == 0


async def test_waiter_that_gives_up_leaves_nothing_in_the_queue(
    locks: Locks, db: Database, lock_clock: trio.testing.MockClock
) -> None:
    holder = await acquire(locks, "slot", "a")
    with trio.move_on_after(5) as scope:
        await acquire(locks, "slot", "impatient")
    assert scope.cancelled_caught
    assert (await info(locks, "slot")).waiters == 0
    await release(locks, holder)
    after = await info(locks, "slot")
    assert (after.holders, after.waiters) == ((), 0)
    assert [e.type for e in await lock_events(db)] == ["lock.acquired", "lock.released"]
    assert (await stats(locks)).abandoned == 1


async def test_expired_lease_is_taken_back_and_the_next_waiter_granted_at_its_deadline(
    locks: Locks, db: Database, lock_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    await acquire(locks, "deploy", "slowpoke", ttl=30)
    with trio.fail_after(60):  # virtual seconds: a missed expiry fails instead of hanging
        grant = await acquire(locks, "deploy", "next")
    assert trio.current_time() - start == pytest.approx(30, abs=0.5)
    assert grant.fence == 2
    types = [e.type for e in await lock_events(db)]
    assert types == ["lock.acquired", "lock.expired", "lock.acquired"]
    assert (await stats(locks)).expiries == 1


async def test_a_lease_nobody_waits_for_expires_by_the_managers_own_clock(
    locks: Locks, db: Database, lock_clock: trio.testing.MockClock
) -> None:
    await acquire(locks, "deploy", "a", ttl=10)
    await trio.sleep(11)
    assert [e.type for e in await lock_events(db)] == ["lock.acquired", "lock.expired"]
    assert await db.read(lambda c: c.execute("SELECT count(*) FROM locks").fetchone()[0]) == 0


async def test_extend_adds_time_and_fails_after_expiry(
    locks: Locks, db: Database, lock_clock: trio.testing.MockClock
) -> None:
    grant = await acquire(locks, "box", "a", ttl=10)
    await trio.sleep(4)
    extended: ExtendResult = await locks.ask(lambda r: Extend("box", grant.token, 20, r))
    assert extended.remaining == pytest.approx(26, abs=0.2)
    assert (extended.fence, (await info(locks, "box")).holders[0].fence) == (grant.fence, grant.fence)
    await trio.sleep(27)
    with pytest.raises(LockExpired):
        await locks.ask(lambda r: Extend("box", grant.token, 20, r))
    types = [e.type for e in await lock_events(db)]
    assert types == ["lock.acquired", "lock.extended", "lock.expired"]


async def test_steal_attempts_are_refused_and_recorded(
    locks: Locks, db: Database, lock_clock: trio.testing.MockClock
) -> None:
    grant = await acquire(locks, "box", "a")
    with pytest.raises(NotOwner):
        await locks.ask(lambda r: Release("box", "not-the-token", r))
    with pytest.raises(NotOwner):
        await locks.ask(lambda r: Extend("box", "not-the-token", 5, r))
    assert (await info(locks, "box")).holders[0].fence == grant.fence
    refused = [e for e in await lock_events(db) if e.type == "lock.refused"]
    assert [e.data["action"] for e in refused] == ["release", "extend"]
    assert (await stats(locks)).refused == 2


async def test_release_is_idempotent_for_its_owner(locks: Locks, lock_clock: trio.testing.MockClock) -> None:
    grant = await acquire(locks, "box", "a")
    assert await release(locks, grant) is ReleaseOutcome.RELEASED
    assert await release(locks, grant) is ReleaseOutcome.ALREADY_RELEASED


async def test_shared_holders_coexist_and_a_writer_waits_for_all(
    locks: Locks, lock_clock: trio.testing.MockClock
) -> None:
    r1 = await acquire(locks, "dataset", "r1", mode=LockMode.SHARED)
    r2 = await acquire(locks, "dataset", "r2", mode=LockMode.SHARED)
    assert len((await info(locks, "dataset")).holders) == 2
    with pytest.raises(LockUnavailable):
        await acquire(locks, "dataset", "w", wait=False)
    await release(locks, r1)
    await release(locks, r2)
    writer = await acquire(locks, "dataset", "w", wait=False)
    assert writer.fence == 3


async def test_list_locks_filters_by_owner_and_prefix(
    locks: Locks, lock_clock: trio.testing.MockClock
) -> None:
    await acquire(locks, "gpu/1", "alice")
    await acquire(locks, "gpu/2", "bob")
    await acquire(locks, "repo/main", "alice")

    async def listed(owner: str | None = None, prefix: str | None = None) -> list[str]:
        found: tuple[LockInfo, ...] = await locks.ask(lambda r: ListLocks(r, owner, prefix))
        return [i.resource for i in found]

    assert await listed() == ["gpu/1", "gpu/2", "repo/main"]
    assert await listed(owner="alice") == ["gpu/1", "repo/main"]
    assert await listed(prefix="gpu/") == ["gpu/1", "gpu/2"]
    assert await listed(owner="alice", prefix="gpu/") == ["gpu/1"]


async def test_stats_count_acquisitions_contention_and_wait_times(
    locks: Locks, lock_clock: trio.testing.MockClock
) -> None:
    holder = await acquire(locks, "r", "a")

    async def waiter() -> None:
        await release(locks, await acquire(locks, "r", "b"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(2)
        await release(locks, holder)
    s = await stats(locks)
    assert (s.acquisitions, s.contended, s.releases, s.held, s.waiting) == (2, 1, 2, 0, 0)
    buckets = dict(s.wait_buckets)
    assert (buckets[0.001], buckets[1.0], buckets[2.5], s.wait_count) == (1, 1, 2, 2)


async def test_concurrent_acquires_share_commit_batches(
    locks: Locks, db: Database, lock_clock: trio.testing.MockClock
) -> None:
    before = db.statistics()
    async with trio.open_nursery() as nursery:
        for i in range(200):
            nursery.start_soon(acquire, locks, f"res-{i}", "w")
    after = db.statistics()
    assert await db.read(lambda c: c.execute("SELECT count(*) FROM locks").fetchone()[0]) == 200
    assert after.batches - before.batches < 50, "one transaction per acquire: group commit is not working"


async def test_grant_whose_asker_left_before_the_commit_is_given_back(
    locks: Locks, db: Database, lock_clock: trio.testing.MockClock
) -> None:
    holder = await acquire(locks, "r", "a")
    entered, opened = threading.Event(), threading.Event()

    def hold_the_writer(tx: Tx) -> None:
        entered.set()
        opened.wait(10)

    waiter_scope = trio.CancelScope()

    async def impatient_waiter() -> None:
        with waiter_scope:
            await acquire(locks, "r", "b")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(db.write, hold_the_writer)
        await trio.to_thread.run_sync(entered.wait, 10)
        nursery.start_soon(impatient_waiter)
        await until(locks, "r", lambda i: i.waiters == 1)
        nursery.start_soon(release, locks, holder)
        await until(locks, "r", lambda i: [h.owner for h in i.holders] == ["b"])  # granted, not yet committed
        waiter_scope.cancel()
        opened.set()
    await until(locks, "r", lambda i: i.holders == ())
    # Any answer is sent only after the changes queued before it are committed: use one as a barrier.
    with pytest.raises(LockNotHeld):
        await locks.ask(lambda r: Release("r", "no-such-token", r))
    events = [(e.type, e.data["fence"], e.data.get("reason")) for e in await lock_events(db)]
    assert events == [
        ("lock.acquired", 1, None),
        ("lock.released", 1, "released"),
        ("lock.acquired", 2, None),
        ("lock.released", 2, "abandoned"),
    ]


async def test_waiters_are_told_when_the_manager_stops(
    db: Database, lock_clock: trio.testing.MockClock, open_manager: ManagerFactory
) -> None:
    outcome: list[BaseException] = []

    async def waiter(locks: Locks) -> None:
        try:
            await acquire(locks, "r", "b")
        except ActorStopped as error:
            outcome.append(error)

    async with trio.open_nursery() as nursery:
        async with open_actor(open_manager(db)) as locks:
            holder = await acquire(locks, "r", "a")
            nursery.start_soon(waiter, locks)
            await until(locks, "r", lambda i: i.waiters == 1)
    assert len(outcome) == 1
    # The held lease was committed and stays for its TTL; the waiter left nothing behind.
    rows = await db.read(lambda c: c.execute("SELECT fence FROM locks").fetchall())
    assert rows == [(holder.fence,)]
