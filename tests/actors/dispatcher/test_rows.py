"""`rows.loads` / `rows.dumps`: orjson where it agrees with the stdlib on the values, else the stdlib."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from actors.dispatcher.rows import TaskRow, dumps, loads


@pytest.mark.parametrize(
    "text",
    [
        '{"n":1}',
        '{"big":18446744073709551616,"neg":-9223372036854775809}',
        '{"max":9223372036854775807,"u64":18446744073709551615}',
        '{"huge":1e400}',
        '{"lone":"\\ud800","pair":"\\ud83d\\ude00","e":"caf\\u00e9"}',
        '{"nested":{"a":[1,2.5,-0.0,null,true,"x"]},"dup":1,"dup":2}',
        '{"digits":"12345678901234567890"}',
    ],
)
def test_loads_reads_what_json_loads_reads(text: str) -> None:
    value = loads(text)
    assert value == json.loads(text)
    assert [type(v) for v in value.values()] == [type(v) for v in json.loads(text).values()]


@pytest.mark.parametrize(
    "value",
    [
        {"ok": True, "n": [1, 2.5, None, -0.0], "s": "caf\u00e9 \U0001f600"},
        {"big": 2**70, "u64": 2**64 - 1},
        {1: "int key", "t": (1, 2)},
        {"lone": "\ud800"},
    ],
)
def test_dumps_writes_a_text_that_reads_back_as_the_stdlib_would(value: dict[Any, Any]) -> None:
    text = dumps(value)
    assert text is not None
    assert loads(text) == json.loads(text) == json.loads(json.dumps(value))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_dumps_refuses_non_finite_numbers(bad: float) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        dumps({"x": {"deep": [bad]}})


def test_dumps_keeps_null_for_none() -> None:
    assert dumps(None) is None


def _row(**changes: Any) -> TaskRow:
    values: list[Any] = [
        7, "t1", "c", 0, "running", 1, 3, None, "{}", 0, None, 1.0, 1.0, "tok", 30.0, 31.0, None, "w",
        0, None, None, None, 0.5, 1.0, None,
    ]  # fmt: skip
    row = TaskRow.from_sql(tuple(values))
    for name, value in changes.items():
        setattr(row, name, value)
    return row


def test_update_writes_columns_set_to_none_as_null_literals_not_parameters() -> None:
    row = _row()
    row.lease_expires_at = None
    row.lease_token = None
    row.updated_at = 2.0
    update = row.update()
    assert update is not None
    sql, params = update
    assert sql == "UPDATE tasks SET lease_token = NULL, lease_expires_at = NULL, updated_at = ? WHERE seq = ?"
    assert params == (2.0, 7)


def test_update_binds_changed_values_and_skips_unchanged_ones() -> None:
    row = _row()
    assert row.update() is None
    row.deadline_at = 99.0
    row.error = "boom"
    assert row.update() == ("UPDATE tasks SET deadline_at = ?, error = ? WHERE seq = ?", (99.0, "boom", 7))
