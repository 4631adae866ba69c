"""Group commit: batching, per-op failure isolation, whole-batch failure, cancellation."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from actors.storage import Database, StoredEvent, TransactionLostError, Tx


async def _queue_writes(nursery: trio.Nursery, db: Database, ops: list[Any], results: dict[int, Any]) -> None:
    async def one(i: int, op: Any) -> None:
        try:
            results[i] = await db.write(op)
        except Exception as exc:
            results[i] = exc

    for i, op in enumerate(ops):
        nursery.start_soon(one, i, op)
    await trio.testing.wait_all_tasks_blocked()


async def test_concurrent_writers_share_few_batches(db: Database, gate: Any, add_item: Any) -> None:
    before = db.statistics()
    results: dict[int, Any] = {}
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(db.write, gate.op)
            await gate.wait_entered()
            await _queue_writes(nursery, db, [add_item(f"n{i}") for i in range(100)], results)
            assert db.statistics().queued == 100
            gate.open()
    stats = db.statistics()
    assert stats.batches - before.batches == 2  # the gate's batch, then all 100 queued writes together
    assert stats.ops - before.ops == 101
    assert stats.max_batch_size == 100
    assert sorted(results.values()) == list(range(1, 101))


async def test_batches_are_capped(db_path: Path, gate: Any) -> None:
    async with Database.open(db_path, max_batch=10) as db:
        before = db.statistics()
        results: dict[int, Any] = {}
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(db.write, gate.op)
                await gate.wait_entered()
                await _queue_writes(nursery, db, [lambda tx: None] * 25, results)
                gate.open()
        stats = db.statistics()
    assert stats.batches - before.batches == 1 + 3
    assert stats.max_batch_size == 10
    assert len(results) == 25


async def test_write_returns_the_op_value(db: Database) -> None:
    assert await db.write(lambda tx: tx.conn.execute("SELECT 6 * 7").fetchone()[0]) == 42


async def test_failing_op_fails_only_its_caller_and_publishes_nothing(
    db: Database, gate: Any, add_item: Any, published: list[StoredEvent]
) -> None:
    def bad(tx: Tx) -> None:
        add_item("bad")(tx)
        raise ValueError("nope")

    results: dict[int, Any] = {}
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(db.write, gate.op)
            await gate.wait_entered()
            await _queue_writes(nursery, db, [add_item("a"), bad, add_item("b")], results)
            gate.open()
    assert isinstance(results[1], ValueError)
    assert not isinstance(results[0], Exception)
    assert not isinstance(results[2], Exception)
    assert db.statistics().last_batch_size == 3
    names = await db.read(lambda c: [r[0] for r in c.execute("SELECT name FROM items ORDER BY id")])
    assert sorted(names) == ["a", "b"]
    assert sorted(e.subject or "" for e in published) == ["a", "b"]
    stored = await db.events_after(0)
    assert [e.seq for e in stored] == [e.seq for e in published]


async def test_failed_commit_fails_every_op_of_the_batch(
    db: Database, gate: Any, add_item: Any, published: list[StoredEvent]
) -> None:
    await db.migrate(
        "fk",
        [
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
            "CREATE TABLE child (id INTEGER PRIMARY KEY,"
            " parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
        ],
    )

    def orphan(tx: Tx) -> None:
        # Deferred foreign keys are checked only at COMMIT, so this op succeeds and the COMMIT fails.
        tx.conn.execute("INSERT INTO child (parent_id) VALUES (999)")

    results: dict[int, Any] = {}
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(db.write, gate.op)
            await gate.wait_entered()
            await _queue_writes(nursery, db, [add_item("a"), orphan, add_item("b")], results)
            gate.open()
    assert all(isinstance(r, sqlite3.IntegrityError) for r in results.values()), results
    assert published == []
    assert await db.read(lambda c: c.execute("SELECT count(*) FROM items").fetchone()[0]) == 0
    assert db.statistics().batches_failed == 1
    # The writer recovers: the next batch commits normally.
    await db.write(add_item("c"))
    assert [e.subject for e in published] == ["c"]


async def test_op_that_commits_by_itself_fails_its_batch(db: Database, add_item: Any) -> None:
    def rogue(tx: Tx) -> None:
        tx.conn.commit()

    with pytest.raises(TransactionLostError):
        await db.write(rogue)
    await db.write(add_item("after"))


async def _cancellable_write(
    db: Database, op: Any, *, task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED
) -> None:
    with trio.CancelScope() as scope:
        task_status.started(scope)
        await db.write(op)


async def test_cancelled_queued_writer_is_withdrawn(db: Database, gate: Any) -> None:
    ran: list[str] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(db.write, gate.op)
            await gate.wait_entered()
            scope = await nursery.start(_cancellable_write, db, lambda tx: ran.append("nope"))
            await trio.testing.wait_all_tasks_blocked()
            assert db.statistics().queued == 1
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert db.statistics().queued == 0
            gate.open()
    await db.write(lambda tx: None)
    assert ran == []
    assert db.statistics().ops_withdrawn == 1


async def test_writer_cancelled_while_its_batch_runs_still_commits(db: Database, gate: Any) -> None:
    def slow_insert(tx: Tx) -> None:
        tx.conn.execute("INSERT INTO items (name) VALUES ('slow')")
        gate.op(tx)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            scope = await nursery.start(_cancellable_write, db, slow_insert)
            await gate.wait_entered()
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            gate.open()
    await db.write(lambda tx: None)  # queued behind the in-flight batch: returns once that one committed
    names = await db.read(lambda c: [r[0] for r in c.execute("SELECT name FROM items")])
    assert names == ["slow"]
