"""A randomized mix of succeeding, failing and cancelled writers keeps every storage invariant."""

from __future__ import annotations

import random
from typing import Any

import trio

from actors.storage import Database, StoredEvent, Tx


async def test_random_mix_of_writers_keeps_outcomes_rows_and_events_consistent(
    db: Database, published: list[StoredEvent]
) -> None:
    rng = random.Random(20261127)
    outcome: dict[str, str] = {}

    def op(name: str, fail: bool) -> Any:
        def run(tx: Tx) -> None:
            tx.conn.execute("INSERT INTO items (name) VALUES (?)", (name,))
            tx.emit("item.added", subject=name)
            if fail:
                raise ValueError(name)

        return run

    async def writer(name: str, fail: bool, cancel_after: int | None) -> None:
        with trio.CancelScope() as scope:
            if cancel_after is not None:

                async def canceller() -> None:
                    for _ in range(cancel_after):
                        await trio.lowlevel.checkpoint()
                    scope.cancel()

                nursery.start_soon(canceller)
            try:
                await db.write(op(name, fail))
                outcome[name] = "ok"
            except ValueError:
                outcome[name] = "failed"
            return
        outcome[name] = "cancelled"

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for i in range(400):
                cancel_after = rng.randrange(0, 20) if rng.random() < 0.25 else None
                nursery.start_soon(writer, f"w{i}", rng.random() < 0.2, cancel_after)
                if rng.random() < 0.1:
                    await trio.lowlevel.checkpoint()
    await db.write(lambda tx: None)  # anything still in flight for cancelled callers has committed now

    rows = set(await db.read(lambda c: [r[0] for r in c.execute("SELECT name FROM items")]))
    stored = await db.events_after(0, limit=10_000)
    assert stored == published
    assert [e.seq for e in published] == sorted(e.seq for e in published)
    assert {e.subject for e in published} == rows
    for name, result in outcome.items():
        if result == "ok":
            assert name in rows
        elif result == "failed":
            assert name not in rows
    kinds = set(outcome.values())
    assert kinds == {"ok", "failed", "cancelled"}, kinds  # the mix really exercised every path
    stats = db.statistics()
    assert stats.queued == 0
    assert stats.batches < 400
