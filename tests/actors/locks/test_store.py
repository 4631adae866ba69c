"""The lock store writes runs of changes in bulk but keeps their order: events, rows and fences."""

from __future__ import annotations

from dataclasses import replace

from actors.locks import store
from actors.locks.messages import LockMode
from actors.locks.table import Change, Expired, Extended, Granted, Lease, Refused, Released
from actors.storage import Database, Tx


def _lease(token: str, resource: str, fence: int) -> Lease:
    return Lease(resource, f"owner-{token}", token, fence, LockMode.EXCLUSIVE, 0, 10.0, 40.0)


async def test_a_mixed_batch_keeps_event_order_and_leaves_each_lease_in_its_last_state(db: Database) -> None:
    await db.migrate(store.COMPONENT, store.MIGRATIONS)
    a, b, c = _lease("ta", "r1", 1), _lease("tb", "r2", 1), _lease("tc", "r1", 2)
    longer = replace(b, expires_at=50.0)
    changes: list[Change] = [
        Granted(a, 1, 0.0),
        Granted(b, 2, 0.0),
        Released(a, abandoned=False),
        Granted(c, 3, 0.5),
        Refused("r2", "release", (1,)),
        Extended(replace(b, expires_at=45.0)),
        Extended(longer),
    ]

    def apply(tx: Tx) -> None:
        store.apply_changes(tx, changes, wall_offset=1_000.0)

    await db.write(apply)
    events = await db.events_after(0, topics=["lock"])
    assert [(e.type, e.subject) for e in events] == [
        ("lock.acquired", "r1"),
        ("lock.acquired", "r2"),
        ("lock.released", "r1"),
        ("lock.acquired", "r1"),
        ("lock.refused", "r2"),
        ("lock.extended", "r2"),
        ("lock.extended", "r2"),
    ]
    assert events[-1].data["expires_at"] == 1_050.0
    stored = await db.read(store.load)
    assert sorted((lease.token, lease.fence, lease.expires_at) for lease in stored.leases) == [
        ("tb", 1, 1_050.0),
        ("tc", 2, 1_040.0),
    ]
    assert stored.fences == {"r1": 2, "r2": 1}

    def expire(tx: Tx) -> None:
        store.apply_changes(tx, [Expired(longer), Released(c, abandoned=True)], wall_offset=1_000.0)

    await db.write(expire)
    assert (await db.read(store.load)).leases == []
    last = await db.events_after(events[-1].seq, topics=["lock"])
    assert [(e.type, e.data.get("reason")) for e in last] == [
        ("lock.expired", None),
        ("lock.released", "abandoned"),
    ]
