"""The ``tasks`` row as the SQLite store handles it: column lists, decoding, and the one UPDATE it uses."""

from __future__ import annotations

import hmac
import json
import operator
import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .messages import TaskStatus, TaskView, build_task_view

COLUMNS = (
    "seq, id, core_id, priority, status, attempts, max_attempts, timeout_s, metadata, stay, idempotency_key,"
    " not_before, rank, lease_token, lease_s, lease_expires_at, deadline_at, claimed_by, cancel_requested,"
    " progress, result, error, created_at, updated_at, finished_at"
)
POSITION = {name.strip(): i for i, name in enumerate(COLUMNS.split(","))}
"""A column's position in a row read with COLUMNS."""

INSERT = (
    "INSERT INTO tasks (id, core_id, priority, status, max_attempts, timeout_s, metadata, stay,"
    " idempotency_key, not_before, rank, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
INSERT_PLAIN = (
    "INSERT INTO tasks (id, core_id, priority, status, max_attempts, metadata, stay, not_before, rank,"
    " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
"""`INSERT` of a task without timeout and idempotency key (the common one): those columns are left NULL
rather than bound as None, which the sqlite3 module only binds after a failed adapter lookup (~0.6 us)."""

# The columns an op may change, with their positions in COLUMNS.
_MUTABLE = tuple(
    (name, POSITION[name])
    for name in (
        "status", "attempts", "not_before", "rank", "lease_token", "lease_s", "lease_expires_at",
        "deadline_at", "claimed_by", "cancel_requested", "progress", "result", "error", "updated_at",
        "finished_at",
    )
)  # fmt: skip
_INDEXES = range(len(_MUTABLE))
_MUTABLE_OF = operator.itemgetter(*(pos for _, pos in _MUTABLE))  # a read row -> its mutable columns
_UPDATES: dict[tuple[int, ...], str] = {}


def _update_sql(changed: tuple[int, ...]) -> str:
    # Only changed columns are SET: SQLite rewrites every index that covers a SET column (or has it in
    # its WHERE), whether or not the value differs, so a full-row UPDATE cost 2.5x a narrow one.
    # A column set to NULL is written as the literal (index ~i in `changed`), not bound as None: the sqlite3
    # module binds None only after a failed adapter lookup that formats an AttributeError (~0.6 us).
    sql = _UPDATES.get(changed)
    if sql is None:
        columns = ", ".join(
            f"{_MUTABLE[i][0]} = ?" if i >= 0 else f"{_MUTABLE[~i][0]} = NULL" for i in changed
        )
        sql = _UPDATES[changed] = f"UPDATE tasks SET {columns} WHERE seq = ?"
    return sql


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
# As `policy.encode_json`: what orjson would write differently from the stdlib goes to the stdlib encoder.
_ORJSON_STRICT = (
    orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
)
_LONG_NUMBER = re.compile(r"\d{19}")


def dumps(value: Mapping[str, Any] | None) -> str | None:
    """Compact JSON text of a mapping (``None`` stays NULL); ValueError for NaN or infinities.

    orjson first; it writes NaN and infinities as null, so a text with a null in it (or a value orjson
    refuses) is encoded again by the stdlib encoder, which refuses them.
    """
    if value is None:
        return None
    try:
        text = orjson.dumps(value, option=_ORJSON_STRICT)
        if b"null" not in text:
            return text.decode()
    except orjson.JSONEncodeError:
        pass
    return _ENCODER.encode(value)


def loads(text: str) -> Any:
    """The value of a JSON text this module (or the dispatch path) wrote, as `json.loads` reads it.

    orjson unless the text may hold an integer beyond 64 bits (which orjson reads as a float) or is one
    orjson refuses (lone surrogates, numbers out of float range).
    """
    if _LONG_NUMBER.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def _loads(text: str | None) -> Mapping[str, Any] | None:
    return None if text is None else loads(text)


_STATUSES = {status.value: status for status in TaskStatus}
_STATUS_VALUES = {status: status.value for status in TaskStatus}  # a dict lookup is cheaper than .value


@dataclass(slots=True)
class TaskRow:
    """A mutable copy of one row, changed by an op and written back with `save`."""

    seq: int
    id: str
    core_id: str
    priority: int
    status: TaskStatus
    attempts: int
    max_attempts: int
    timeout_s: float | None
    metadata: Mapping[str, Any]
    stay: bool
    idempotency_key: str | None
    not_before: float
    rank: float
    lease_token: str | None
    lease_s: float | None
    lease_expires_at: float | None
    deadline_at: float | None
    claimed_by: str | None
    cancel_requested: bool
    progress: Mapping[str, Any] | None
    result: Mapping[str, Any] | None
    error: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    loaded: tuple[Any, ...]  # the row as read, to write back only what changed
    loaded_json: tuple[Any, Any]  # progress and result as decoded, to skip re-encoding them if untouched

    @classmethod
    def from_sql(cls, r: tuple[Any, ...]) -> TaskRow:
        """Decode a row selected as ``COLUMNS``."""
        progress, result = _loads(r[19]), _loads(r[20])
        return cls(
            r[0], r[1], r[2], r[3], _STATUSES[r[4]], r[5], r[6], r[7], loads(r[8]), bool(r[9]), r[10],
            r[11], r[12], r[13], r[14], r[15], r[16], r[17], bool(r[18]), progress, result,
            r[21], r[22], r[23], r[24], r, (progress, result),
        )  # fmt: skip

    def view(self) -> TaskView:
        """The public, immutable view (without the lease token)."""
        return build_task_view(
            self.id, self.core_id, self.priority, self.status, self.attempts, self.max_attempts,
            self.timeout_s, self.metadata, self.stay, self.idempotency_key, self.not_before, self.claimed_by,
            self.lease_expires_at, self.deadline_at, self.cancel_requested, self.progress, self.result,
            self.error, self.created_at, self.updated_at, self.finished_at,
        )  # fmt: skip

    def holds(self, lease_token: str) -> bool:
        """True if ``lease_token`` is this row's current token (compared in constant time)."""
        return self.lease_token is not None and hmac.compare_digest(self.lease_token, lease_token)

    def clear_lease(self) -> None:
        """Forget the lease: the holder's token is stale from now on."""
        self.lease_token = None
        self.lease_expires_at = None
        self.deadline_at = None

    def save(self, conn: sqlite3.Connection) -> None:
        """Write back the columns that changed since the row was read."""
        update = self.update()
        if update is not None:
            conn.execute(*update)

    def update(self) -> tuple[str, tuple[Any, ...]] | None:
        """The UPDATE (statement, parameters) that writes back what changed since the row was read, if any."""
        loaded = self.loaded
        old_progress, old_result = self.loaded_json
        values = (
            _STATUS_VALUES[self.status], self.attempts, self.not_before, self.rank, self.lease_token,
            self.lease_s, self.lease_expires_at, self.deadline_at, self.claimed_by,
            int(self.cancel_requested),
            loaded[19] if self.progress is old_progress else dumps(self.progress),
            loaded[20] if self.result is old_result else dumps(self.result),
            self.error, self.updated_at, self.finished_at,
        )  # fmt: skip
        was = _MUTABLE_OF(loaded)
        changed: list[int] = []
        params: list[Any] = []
        for i, new, old in zip(_INDEXES, values, was, strict=True):
            if new != old:
                if new is None:
                    changed.append(~i)  # SET to the NULL literal (see `_update_sql`)
                else:
                    changed.append(i)
                    params.append(new)
        if not changed:
            return None
        params.append(self.seq)
        return _update_sql(tuple(changed)), tuple(params)


def select_one(conn: sqlite3.Connection, task_id: str) -> TaskRow | None:
    """The row of ``task_id``, if any."""
    r = conn.execute(f"SELECT {COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return None if r is None else TaskRow.from_sql(r)


def select_ids(
    conn: sqlite3.Connection, task_ids: Iterable[str], columns: str = COLUMNS
) -> dict[str, tuple[Any, ...]]:
    """The rows (selected as ``columns``, whose second is ``id``; not decoded) of those of ``task_ids``
    that exist, by id."""
    ids = json.dumps(list(task_ids))  # stdlib: escapes what orjson refuses (lone surrogates)
    sql = f"SELECT {columns} FROM tasks WHERE id IN (SELECT value FROM json_each(?))"
    return {r[1]: r for r in conn.execute(sql, (ids,))}


LEASE_COLUMNS = "seq, id, status, lease_token, lease_s, cancel_requested"
"""What a plain heartbeat reads (a narrow `select_ids`: 6 columns instead of 25)."""
lease_of_row = operator.itemgetter(0, 4, 13, 14, 18)
"""``(seq, status, lease_token, lease_s, cancel_requested)`` of a row selected as ``COLUMNS``."""
lease_of_lease_row = operator.itemgetter(0, 2, 3, 4, 5)
"""``(seq, status, lease_token, lease_s, cancel_requested)`` of a row selected as ``LEASE_COLUMNS``."""


def select_many(conn: sqlite3.Connection, sql_tail: str, params: tuple[Any, ...]) -> list[TaskRow]:
    """Rows of ``SELECT COLUMNS FROM tasks <sql_tail>``."""
    return [TaskRow.from_sql(r) for r in conn.execute(f"SELECT {COLUMNS} FROM tasks {sql_tail}", params)]
