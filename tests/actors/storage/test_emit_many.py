"""`Tx.emit_many`: one statement run, still one row, one seq and one publication per event."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from actors.storage import Database, StoredEvent, Tx, TypedEventItem
from actors.storage.events import encode_payload


async def test_emit_many_gives_each_event_its_own_consecutive_seq(
    db: Database, published: list[StoredEvent]
) -> None:
    await db.write(lambda tx: tx.emit("lock.acquired", subject="before"))
    items = [(f"t{i}", "c1", {"priority": i, "reason": "dispatch"}) for i in range(50)]
    events = await db.write(lambda tx: tx.emit_many("task.queued", items))
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 50))
    assert [(e.subject, e.core_id, e.data["priority"]) for e in events] == [
        (s, c, d["priority"]) for s, c, d in items
    ]
    assert published[1:] == events
    assert await db.events_after(published[0].seq, limit=100) == events  # live event == replayed event


async def test_emit_many_interleaves_with_emit_in_seq_order(
    db: Database, published: list[StoredEvent]
) -> None:
    def op(tx: Tx) -> None:
        tx.emit("task.claimed", subject="a")
        tx.emit_many("task.queued", [("b", None, None), ("c", None, {})])
        tx.emit("task.claimed", subject="d")

    await db.write(op)
    assert [e.subject for e in published] == ["a", "b", "c", "d"]
    assert [e.seq for e in published] == sorted(e.seq for e in published)
    assert await db.events_after(0) == published


async def test_emit_many_of_nothing_inserts_nothing(db: Database, published: list[StoredEvent]) -> None:
    assert await db.write(lambda tx: tx.emit_many("task.queued", [])) == []
    assert published == [] and await db.events_after(0) == []


@pytest.mark.parametrize(
    "data",
    [
        {"tags": ("a", "b"), "nested": {"x": [1, 2.5]}},
        {1: "int key"},
        {"big": 2**70, "small": -(2**70)},
        {"text": "caf\u00e9 \U0001f600", "lone": "\ud800"},
        {"attempt": 1, "result": {"ok": True, "n": [1, -0.0, 2.5e-300, None, 2**64 - 1], "s": "caf\u00e9"}},
        {"nested": {"deep": [{"big": 2**64}, ("t",)]}},
        {"nested": {"lone": "\ud800"}},
    ],
)
async def test_unusual_payloads_replay_exactly_as_published(
    db: Database, published: list[StoredEvent], data: dict[Any, Any]
) -> None:
    await db.write(lambda tx: tx.emit("task.progress", data=data))
    await db.write(lambda tx: tx.emit_many("task.progress", [(None, None, data)]))
    assert await db.events_after(0) == published
    assert len(published) == 2


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_non_finite_numbers_are_refused(db: Database, published: list[StoredEvent], bad: float) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        await db.write(lambda tx: tx.emit("task.progress", data={"x": bad}))
    with pytest.raises(ValueError, match="not JSON compliant"):
        await db.write(
            lambda tx: tx.emit_many("task.progress", [(None, None, {"ok": 1}), (None, None, {"x": bad})])
        )
    with pytest.raises(ValueError, match="not JSON compliant"):
        await db.write(lambda tx: tx.emit("task.progress", data={"nested": [bad]}))
    assert published == [] and await db.events_after(0) == []


async def test_emit_many_after_the_op_is_refused(db: Database) -> None:
    leaked = await db.write(lambda tx: tx)
    with pytest.raises(RuntimeError):
        leaked.emit_many("task.queued", [("a", None, None)])


async def test_emit_run_mixes_types_with_consecutive_seqs_in_item_order(
    db: Database, published: list[StoredEvent]
) -> None:
    items: list[TypedEventItem] = [
        ("task.running", "t1", "c1", {"attempt": 1}),
        ("task.succeeded", "t1", "c1", {"attempt": 1, "result": {"ok": True}}),
        ("lock.acquired", "l1", None, None),
        ("task.running", "t2", "c2", {"attempt": 2}),
    ]
    events = await db.write(lambda tx: tx.emit_run(items))
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 4))
    assert [(e.type, e.topic, e.subject, e.core_id, dict(e.data)) for e in events] == [
        (t, t.partition(".")[0], s, c, d or {}) for t, s, c, d in items
    ]
    assert published == events
    assert await db.events_after(0) == events  # live event == replayed event


async def test_emit_run_with_one_bad_payload_inserts_nothing(
    db: Database, published: list[StoredEvent]
) -> None:
    items: list[TypedEventItem] = [
        ("task.running", "t1", None, {"ok": 1}),
        ("task.progress", "t1", None, {"x": math.nan}),
    ]
    with pytest.raises(ValueError, match="not JSON compliant"):
        await db.write(lambda tx: tx.emit_run(items))
    assert published == [] and await db.events_after(0) == []


@pytest.mark.parametrize(
    "data",
    [
        {"attempt": 1, "result": {"ok": True, "n": [1, -0.0, 1e-7, None], "s": "caf\u00e9"}},
        {"nested": [(1, 2), {"k": 2**64}]},
        {"n": {"k": 2**63}},
        {"attempt": 2, "result": {"ok": True, "x": 1.5, "s": "caf\u00e9", "none": None}},
        {"result": {"s": "lone \ud800 surrogate"}},
        {"result": {1: "int key"}},
        {"result": {"k": -(2**63)}, "progress": {"pct": 50}},
    ],
)
def test_a_nested_payload_reads_back_as_the_stdlib_decodes_its_text(data: dict[str, Any]) -> None:
    payload, text = encode_payload(data)
    assert payload == json.loads(text) == json.loads(json.dumps(data))
    for key, value in data.items():
        assert (
            not isinstance(value, dict | list) or payload[key] is not value
        )  # a deep copy: later changes to the caller's objects stay out


@pytest.mark.parametrize("data", [{"result": {"x": math.nan}}, {"progress": {"pct": -math.inf}}])
def test_a_non_finite_float_in_a_nested_payload_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        encode_payload(data)
