"""The API's timestamps: `iso` writes exactly what datetime writes, cached or not."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from orch.http.task_views import iso

EDGES = [
    0.0, 0.0005, 0.0004999, 0.9999995, 0.9999994, 1.9999995, 1e9 + 0.9999995, 1764227581.123456,
    1764227581.9995, 1764227581.0000005, 253402300799.999, 1.5e-7, -1.5, -1e-7, -86400.9999995,
]  # fmt: skip


def reference(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


@pytest.mark.parametrize("ts", EDGES)
def test_iso_matches_datetime_at_rounding_edges(ts: float) -> None:
    assert iso(ts) == reference(ts)


def test_iso_matches_datetime_on_random_and_repeated_timestamps() -> None:
    rng = random.Random(7)
    stamps = [rng.uniform(0, 4e9) for _ in range(5000)]
    stamps += [round(rng.uniform(1.7e9, 1.8e9), rng.randrange(8)) for _ in range(5000)]
    stamps += [1764227581 + k / 1e6 for k in range(0, 2_000_000, 997)]
    for ts in stamps + stamps[::-1]:  # the second pass hits the caches
        assert iso(ts) == reference(ts), ts


def test_iso_keeps_none() -> None:
    assert iso(None) is None
