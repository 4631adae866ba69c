"""The event log: publication order, filters, last_seq, pruning."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from actors.storage import Database, StoredEvent, Tx


async def test_publish_order_equals_seq_order_under_concurrency(
    db: Database, published: list[StoredEvent]
) -> None:
    def emit_some(worker: int, i: int) -> Any:
        def op(tx: Tx) -> None:
            for k in range(1 + i % 3):
                tx.emit("task.progress", subject=f"w{worker}", data={"i": i, "k": k})

        return op

    async def worker(w: int) -> None:
        for i in range(20):
            await db.write(emit_some(w, i))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for w in range(30):
                nursery.start_soon(worker, w)
    seqs = [e.seq for e in published]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs) == 30 * sum(1 + i % 3 for i in range(20))
    stored = await db.events_after(0, limit=10_000)
    assert stored == published
    assert db.statistics().batches < 30 * 20  # and they really were grouped


async def test_event_is_published_before_the_writer_returns(
    db: Database, published: list[StoredEvent]
) -> None:
    event = await db.write(lambda tx: tx.emit("lock.acquired", subject="res", core_id="c1", data={"t": 1}))
    assert published == [event]
    assert (event.topic, event.subject, event.core_id, dict(event.data)) == ("lock", "res", "c1", {"t": 1})


async def test_live_event_equals_replayed_event(db: Database, published: list[StoredEvent]) -> None:
    await db.write(lambda tx: tx.emit("task.queued", data={"tags": ("a", "b"), "n": None}))
    [replayed] = await db.events_after(0)
    assert published == [replayed]
    assert replayed.data == {"tags": ["a", "b"], "n": None}


async def test_event_data_must_be_json(db: Database, published: list[StoredEvent]) -> None:
    with pytest.raises(TypeError):
        await db.write(lambda tx: tx.emit("task.queued", data={"x": object()}))
    assert published == []


async def test_events_after_filters(db: Database) -> None:
    def seed(tx: Tx) -> None:
        tx.emit("task.queued", subject="t1", core_id="c1")
        tx.emit("lock.acquired", subject="r1", core_id="c1")
        tx.emit("task.claimed", subject="t1", core_id="c2")
        tx.emit("security.login_failed", subject="bob")
        tx.emit("task.queued", subject="t2", core_id="c2")

    await db.write(seed)
    types = lambda events: [e.type for e in events]  # noqa: E731
    everything = await db.events_after(0)
    assert len(everything) == 5
    assert types(await db.events_after(everything[2].seq)) == ["security.login_failed", "task.queued"]
    assert types(await db.events_after(0, topics={"task"})) == ["task.queued", "task.claimed", "task.queued"]
    assert types(await db.events_after(0, topics=["lock", "security"])) == [
        "lock.acquired",
        "security.login_failed",
    ]
    assert await db.events_after(0, topics=[]) == []
    assert types(await db.events_after(0, subject="t1")) == ["task.queued", "task.claimed"]
    assert types(await db.events_after(0, core_id="c2", topics={"task"})) == ["task.claimed", "task.queued"]
    assert types(await db.events_after(0, limit=2)) == ["task.queued", "lock.acquired"]


async def test_last_seq_is_monotonic_across_pruning(db: Database) -> None:
    assert await db.last_seq() == 0
    events = [await db.write(lambda tx: tx.emit("task.queued")) for _ in range(3)]
    assert await db.last_seq() == events[-1].seq
    assert await db.prune_events(events[-1].ts + 1) == 2  # the newest event stays: it holds the seq
    assert await db.last_seq() == events[-1].seq
    newer = await db.write(lambda tx: tx.emit("task.queued"))
    assert newer.seq == events[-1].seq + 1
    assert await db.prune_events(newer.ts + 1) == 1
    assert await db.events_after(0) == [newer]


async def test_deleting_a_subjects_events_keeps_the_newest_event_of_the_log(db: Database) -> None:
    await db.write(lambda tx: tx.emit("lock.acquired", subject="r1"))
    mine = await db.write(lambda tx: [tx.emit("task.queued", subject="t1") for _ in range(3)])
    deleted = await db.write(lambda tx: tx.delete_events(subject="t1", topic="task"))
    assert deleted == 2
    assert [e.seq for e in await db.events_after(0, subject="t1")] == [mine[-1].seq]
    later = await db.write(lambda tx: tx.emit("task.queued", subject="t2"))
    assert later.seq == mine[-1].seq + 1
    assert await db.write(lambda tx: tx.delete_events(subject="t1", topic="task")) == 1


async def test_prune_events_deletes_only_older_events_in_batches(db: Database) -> None:
    old = await db.write(lambda tx: [tx.emit("task.queued", data={"i": i}) for i in range(23)])
    cutoff = old[-1].ts + 1e-6
    new = await db.write(lambda tx: tx.emit("task.queued", data={"new": True}))
    assert new.ts > cutoff  # the clock moved; otherwise this test cannot tell old from new
    before = db.statistics().ops
    assert await db.prune_events(cutoff, batch=5) == 23
    assert db.statistics().ops - before == 5  # 5+5+5+5+3: one small write op per batch
    assert await db.events_after(0) == [new]


def test_topic_is_required() -> None:
    from actors.storage.events import topic_of

    assert topic_of("task.queued") == "task"
    assert topic_of("alert") == "alert"
    with pytest.raises(ValueError, match="topic"):
        topic_of(".x")


async def test_live_event_data_is_a_copy_in_replayed_form(db: Database, published: list[StoredEvent]) -> None:
    flat = {"name": "t", "priority": 5, "ratio": 0.5, "ok": True, "none": None}
    nested = {"inner": {"k": 1}, 3: "int key"}
    live = await db.write(lambda tx: [tx.emit("task.queued", data=flat), tx.emit("task.queued", data=nested)])
    flat["name"] = "mutated after emit"
    replayed = await db.events_after(0)
    assert live == replayed
    assert replayed[0].data["name"] == "t"
    assert replayed[1].data == {"inner": {"k": 1}, "3": "int key"}
