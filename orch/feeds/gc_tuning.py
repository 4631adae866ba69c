"""Garbage-collector tuning for a node serving many feed connections (DESIGN §7).

With thousands of connections open, Python's cyclic GC keeps re-scanning the long-lived start-up objects
(modules, the app, actors) and triples the CPU cost of fan-out. After start-up, `gc.freeze()` moves every
object alive then into a permanent generation the collector skips, and a higher gen-0 threshold makes
young collections rarer. Measured here: fan-out 4-7k -> 10-12k deliveries per CPU-second, SSE p99 at 1,000
subscribers x 10 Hz 2.5 s -> 82 ms. `orch serve` applies it once the node is ready; tests do not (freezing
would keep each test's garbage alive for the rest of the process).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

from orch.config import FeedsConfig

__all__ = ["GcTuning", "apply_gc_tuning"]


@dataclass(frozen=True, slots=True)
class GcTuning:
    """What `apply_gc_tuning` did (for the start-up log)."""

    frozen: int
    """Objects moved to the permanent generation (0 when freezing is off)."""
    thresholds: tuple[int, int, int]
    """The collector thresholds now in force."""


def apply_gc_tuning(settings: FeedsConfig) -> GcTuning:
    """Freeze the start-up heap and raise the gen-0 threshold, as `settings` (the feeds section) says."""
    frozen = 0
    if settings.gc_freeze:
        gc.collect()  # freeze survivors only, not garbage that happens to be pending
        gc.freeze()
        frozen = gc.get_freeze_count()
    if settings.gc_gen0_threshold > 0:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(settings.gc_gen0_threshold, max(gen1, 50), max(gen2, 100))
    gen0, gen1, gen2 = gc.get_threshold()
    return GcTuning(frozen=frozen, thresholds=(gen0, gen1, gen2))
