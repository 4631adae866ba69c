"""`rows.loads` / `rows.dumps`: orjson where it agrees with the stdlib on the values, else the stdlib."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from actors.dispatcher.rows import dumps, loads


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
