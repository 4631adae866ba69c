"""Small statistics for latency samples: percentiles, summaries, per-interval timelines, medians."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Bucket", "LatencySummary", "median", "percentile", "summarize_latencies", "timeline"]


def percentile(ordered: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0..100) of an already sorted sequence, nearest-rank; NaN when empty."""
    if not ordered:
        return math.nan
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The median, ignoring NaN; NaN when nothing is left."""
    kept = sorted(v for v in values if not math.isnan(v))
    if not kept:
        return math.nan
    mid = len(kept) // 2
    return kept[mid] if len(kept) % 2 else (kept[mid - 1] + kept[mid]) / 2.0


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Latency distribution of one measurement, in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def summarize_latencies(seconds: Sequence[float]) -> LatencySummary:
    """Summary (ms) of latencies given in seconds."""
    ordered = sorted(seconds)
    if not ordered:
        return LatencySummary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    ms = 1000.0
    return LatencySummary(
        count=len(ordered),
        mean_ms=sum(ordered) / len(ordered) * ms,
        p50_ms=percentile(ordered, 50) * ms,
        p95_ms=percentile(ordered, 95) * ms,
        p99_ms=percentile(ordered, 99) * ms,
        max_ms=ordered[-1] * ms,
    )


@dataclass(frozen=True, slots=True)
class Bucket:
    """One interval of a timeline: start offset (s), operations completed in it, their p50/p99 (ms)."""

    start: float
    count: int
    p50_ms: float
    p99_ms: float


def timeline(starts: Sequence[float], latencies: Sequence[float], width: float = 1.0) -> list[Bucket]:
    """Group samples by completion time into `width`-second buckets (empty buckets included)."""
    if width <= 0:
        raise ValueError("bucket width must be positive")
    if not starts:
        return []
    groups: dict[int, list[float]] = {}
    for start, latency in zip(starts, latencies, strict=True):
        groups.setdefault(int((start + latency) // width), []).append(latency)
    buckets = []
    for index in range(min(groups), max(groups) + 1):
        values = sorted(groups.get(index, []))
        buckets.append(
            Bucket(
                start=index * width,
                count=len(values),
                p50_ms=percentile(values, 50) * 1000.0,
                p99_ms=percentile(values, 99) * 1000.0,
            )
        )
    return buckets
