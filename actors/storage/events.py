"""Event rows (`StoredEvent`) and the write-transaction handle (`Tx`) that emits them."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


def topic_of(event_type: str) -> str:
    """The topic of an event type: its first dot-separated part (``"task.queued"`` -> ``"task"``)."""
    topic = event_type.partition(".")[0]
    if not topic:
        raise ValueError(f"event type {event_type!r} has no topic part")
    return topic


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _as_replayed(payload: dict[str, Any], text: str) -> dict[str, Any]:
    """``payload`` exactly as it will read back from the table, so live and replayed events are equal.

    A flat dict of str keys and JSON scalars survives the round trip unchanged (the common case, and
    ~5 us cheaper than decoding); anything else (tuples, nested objects, int keys, enums) is decoded.
    """
    if all(type(k) is str and type(v) in _JSON_SCALARS for k, v in payload.items()):
        return payload
    decoded: dict[str, Any] = json.loads(text)
    return decoded


def event_from_row(row: tuple[Any, ...]) -> StoredEvent:
    """Build a `StoredEvent` from a row selected as ``EVENT_COLUMNS``."""
    seq, ts, type_, topic, subject, core_id, data = row
    return StoredEvent(seq, ts, type_, topic, subject, core_id, json.loads(data))


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
        if not self._open:
            raise RuntimeError("Tx used outside of its write op")
        payload = {} if data is None else dict(data)
        text = _ENCODER.encode(payload)
        ts = time.time()
        topic = topic_of(type)
        cur = self.conn.execute(_INSERT_EVENT, (ts, type, topic, subject, core_id, text))
        seq = cur.lastrowid
        assert seq is not None
        event = StoredEvent(seq, ts, type, topic, subject, core_id, _as_replayed(payload, text))
        self._emitted.append(event)
        return event

    def _finish(self) -> list[StoredEvent]:
        """Invalidate the handle and hand back what it emitted (called by the batch runner)."""
        self._open = False
        return self._emitted
