"""Per-second rates derived from counters (``*_total`` series). Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping

from .series import parse_series, series_key


class RateDeriver:
    """Turns ``x_total{...}`` counters into ``x_per_s{...}`` rates between consecutive samples.

    The first sample of a counter, a counter that went down (a reset: the process restarted) and a
    non-positive time step produce no rate for that round.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def derive(self, now: float, samples: Mapping[str, float]) -> dict[str, float]:
        """The rates for this round (only for counters present in ``samples``)."""
        rates: dict[str, float] = {}
        for key, value in samples.items():
            name, labels = parse_series(key)
            if not name.endswith("_total") or not math.isfinite(value):
                continue
            previous = self._last.get(key)
            self._last[key] = (now, value)
            if previous is None:
                continue
            then, before = previous
            if now > then and value >= before:
                rates[series_key(name[: -len("_total")] + "_per_s", labels)] = (value - before) / (now - then)
        return rates
