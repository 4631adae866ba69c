"""Counters and the wait-time histogram of the lock table (since start-up; not persisted)."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

WAIT_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    math.inf,
)


@dataclass(slots=True)
class TableCounters:
    """Mutable counters owned by one ``LockTable``."""

    acquisitions: int = 0
    contended: int = 0
    unavailable: int = 0
    releases: int = 0
    extensions: int = 0
    expiries: int = 0
    refused: int = 0
    abandoned: int = 0
    wait_sum: float = 0.0
    wait_counts: list[int] = field(default_factory=lambda: [0] * len(WAIT_BUCKETS))

    def observe_wait(self, seconds: float) -> None:
        """Count one grant that waited ``seconds`` (0 for an immediate grant)."""
        self.wait_counts[bisect.bisect_left(WAIT_BUCKETS, seconds)] += 1
        self.wait_sum += seconds

    def cumulative_buckets(self) -> tuple[tuple[float, int], ...]:
        """Prometheus-style buckets: (upper bound, grants that waited at most that long)."""
        total = 0
        out: list[tuple[float, int]] = []
        for bound, count in zip(WAIT_BUCKETS, self.wait_counts, strict=True):
            total += count
            out.append((bound, total))
        return tuple(out)
