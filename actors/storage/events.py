"""Event rows (`StoredEvent`) and the write-transaction handle (`Tx`) that emits them."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from runtime import positional_builder

from .schema import keep_newest_event

EVENT_COLUMNS = "seq, ts, type, topic, subject, core_id, data"
_INSERT_EVENT = "INSERT INTO events (ts, type, topic, subject, core_id, data) VALUES (?, ?, ?, ?, ?, ?)"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One committed row of table ``events``.

    ``seq`` is monotonic and never reused (it is the SSE id). ``data`` is a plain JSON object; the same
    object may be handed to many subscribers, so treat it as read-only.
    """

    seq: int
    ts: float
    type: str
    topic: str
    subject: str | None
    core_id: str | None
    data: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of all fields."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "type": self.type,
            "topic": self.topic,
            "subject": self.subject,
            "core_id": self.core_id,
            "data": dict(self.data),
        }


_stored_event: Callable[[int, float, str, str, str | None, str | None, Mapping[str, Any]], StoredEvent] = (
    positional_builder(StoredEvent)
)
"""``StoredEvent(*fields)`` for a fraction of the cost (several events are emitted per task)."""


def topic_of(event_type: str) -> str:
    """The topic of an event type: its first dot-separated part (``"task.queued"`` -> ``"task"``)."""
    topic = event_type.partition(".")[0]
    if not topic:
        raise ValueError(f"event type {event_type!r} has no topic part")
    return topic


_TOPICS: dict[str, str] = {}  # event type -> topic, for the few types the code emits


def _known_topic(event_type: str) -> str:
    topic = topic_of(event_type)
    if len(_TOPICS) < 1_000:
        _TOPICS[event_type] = topic
    return topic


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})
_MAX_INT64 = 2**63 - 1

EventItem = tuple[str | None, str | None, Mapping[str, Any] | None]
"""One event of `Tx.emit_many`: ``(subject, core_id, data)``."""

TypedEventItem = tuple[str, str | None, str | None, Mapping[str, Any] | None]
"""One event of `Tx.emit_run`: ``(type, subject, core_id, data)``."""


def encode_payload(data: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
    """A private copy of ``data`` as it will read back from the table, and its JSON text.

    A flat dict of str keys and JSON scalars (the common case) is encoded by orjson and survives the round
    trip unchanged, so it is not decoded again (~5 us). A nested one is encoded and decoded by orjson and
    taken if the copy equals it (plain JSON values only: tuples, enums, NaN, oversized ints and the like
    come back different or make orjson refuse). Anything else goes through the stdlib encoder and is
    decoded, so live and replayed events are equal. NaN and infinities are refused with ValueError.
    """
    payload = {} if data is None else dict(data)
    if _is_flat(payload):
        try:
            return payload, orjson.dumps(payload).decode()
        except orjson.JSONEncodeError:
            pass  # e.g. a lone surrogate, which orjson refuses and the stdlib escapes
    else:
        try:
            raw = orjson.dumps(payload)
        except orjson.JSONEncodeError:
            raw = b""
        if raw:
            copy: dict[str, Any] = orjson.loads(raw)
            if copy == payload:
                return copy, raw.decode()
    text = _ENCODER.encode(payload)
    decoded: dict[str, Any] = json.loads(text)
    return decoded, text


def _is_flat(payload: dict[Any, Any]) -> bool:
    """True if every key is a str and every value a JSON scalar (int within int64); ValueError for a
    non-finite float."""
    for key, value in payload.items():
        kind = type(value)
        if type(key) is not str or kind not in _JSON_SCALARS:
            return False
        if kind is float and not math.isfinite(value):
            raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
        if kind is int and not -_MAX_INT64 <= value <= _MAX_INT64:
            return False
    return True


def event_from_row(row: tuple[Any, ...]) -> StoredEvent:
    """Build a `StoredEvent` from a row selected as ``EVENT_COLUMNS``."""
    seq, ts, type_, topic, subject, core_id, data = row
    return _stored_event(seq, ts, type_, topic, subject, core_id, json.loads(data))


class Tx:
    """The handle a write op receives. Valid only while the op runs, and only in the writer thread.

    ``conn`` is the writer connection, already inside the batch transaction and the op's own SAVEPOINT: use it
    for the op's statements, but never call ``commit()``/``rollback()`` or run BEGIN/COMMIT/ROLLBACK on it.
    """

    __slots__ = ("_emitted", "_open", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._emitted: list[StoredEvent] = []
        self._open = True

    def emit(
        self,
        type: str,
        *,
        subject: str | None = None,
        core_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> StoredEvent:
        """INSERT an event into this transaction; it is published after COMMIT unless the op fails."""
        return self.emit_run([(type, subject, core_id, data)])[0]

    def emit_many(self, type: str, items: Sequence[EventItem]) -> list[StoredEvent]:
        """INSERT one ``type`` event per ``(subject, core_id, data)`` item: `emit_run` of one type."""
        return self.emit_run([(type, subject, core_id, data) for subject, core_id, data in items])

    def emit_run(self, items: Sequence[TypedEventItem]) -> list[StoredEvent]:
        """INSERT one event per ``(type, subject, core_id, data)`` item in one statement run.

        Same as calling `emit` for each item in order (each event is its own row with its own seq, published
        in seq order), but one ``executemany``: the rows get consecutive seqs (each new row gets the largest
        seq + 1, and this connection is the only writer), so the last seq identifies them all. The events of
        a run share one ``ts``. A payload that cannot be encoded raises before anything is inserted.
        """
        self._check_open()
        if not items:
            return []
        ts = time.time()
        rows: list[tuple[Any, ...]] = []
        payloads: list[dict[str, Any]] = []
        topics = _TOPICS
        for type_, subject, core_id, data in items:
            payload, text = encode_payload(data)
            payloads.append(payload)
            rows.append((ts, type_, topics.get(type_) or _known_topic(type_), subject, core_id, text))
        first = self._insert(rows)
        events = [
            _stored_event(first + i, ts, type_, topic, subject, core_id, payload)
            for i, ((_, type_, topic, subject, core_id, _), payload) in enumerate(
                zip(rows, payloads, strict=True)
            )
        ]
        self._emitted.extend(events)
        return events

    def _insert(self, params: list[tuple[Any, ...]]) -> int:
        """INSERT the event rows; returns the seq of the first."""
        if len(params) == 1:
            seq = self.conn.execute(_INSERT_EVENT, params[0]).lastrowid
            assert seq is not None
            return seq
        cur = self.conn.executemany(_INSERT_EVENT, params)
        if cur.rowcount != len(params):
            raise RuntimeError(f"emit_run inserted {cur.rowcount} of {len(params)} events")
        last: int = self.conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        return last - len(params) + 1

    def delete_events(self, *, subject: str, topic: str) -> int:
        """Delete the events of ``subject`` in ``topic`` (retention), except the newest event of the log.

        The newest row is what keeps seqs from ever being reused, so it stays until a newer one exists.
        """
        self._check_open()
        where = keep_newest_event("subject = ? AND +topic = ?")
        return self.conn.execute(f"DELETE FROM events WHERE {where}", (subject, topic)).rowcount

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("Tx used outside of its write op")

    def _finish(self) -> list[StoredEvent]:
        """Invalidate the handle and hand back what it emitted (called by the batch runner)."""
        self._open = False
        return self._emitted
