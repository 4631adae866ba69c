"""`json_bytes` (orjson) writes what `json.dumps(compact, ensure_ascii=False, default=str)` wrote."""

from __future__ import annotations

import datetime
import enum
import json
import uuid
from dataclasses import dataclass
from typing import Any

from orch.http.app import json_bytes


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 2


@dataclass
class Point:
    x: int


def old(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def test_the_same_bytes_as_json_dumps_for_what_responses_hold() -> None:
    data = {
        "text": 'café \u2028 \U0001f600 "quoted" \\ \n',
        "numbers": [0, -1, 1.5, 0.1, 1e16, 2**63 - 1, True, False, None],
        "nested": {"list": [{"a": []}], "tuple": (1, 2)},
        "enums": [Colour.RED, Level.HIGH],
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "day": datetime.date(2026, 1, 2),
        "point": Point(1),
        "id": uuid.UUID(int=5),
        "bytes-ish": b"raw",
    }
    assert json_bytes(data) == old(data)


def test_what_orjson_refuses_falls_back_to_json() -> None:
    for data in ({1: "int key"}, {"big": 2**70}, [{1.5: 2}]):
        assert json_bytes(data) == old(data)
