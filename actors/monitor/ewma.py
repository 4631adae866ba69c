"""EWMA anomaly detection for one series: exponentially weighted mean and variance, z-scores.

Each point is scored against the estimate from *before* it (so a spike cannot hide itself by moving the
baseline first). The first ``warmup`` points only teach the estimate. The standard deviation has a floor
(absolute and relative to the mean) so a perfectly flat series does not turn every wobble into an
infinite score. Outliers are kept out of the estimate, so a burst of anomalies does not drag the baseline
toward itself; but after ``readapt_after`` outliers in a row the detector accepts that the level really
moved and re-centres on it (otherwise a permanent step would be "anomalous" forever). NaN and infinities
are rejected without touching the state. Everything is a pure function of the input sequence, so
replaying the same values gives identical verdicts.

Update rule (West 1979 / Finch 2009, incremental EW variance)::

    diff = x - mean;  mean += alpha * diff;  var = (1 - alpha) * (var + alpha * diff**2)
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class Verdict(enum.StrEnum):
    """What the detector says about one point."""

    WARMING = "warming"  # still learning; no verdict
    NORMAL = "normal"
    ANOMALOUS = "anomalous"
    REJECTED = "rejected"  # NaN or infinite; ignored


class Direction(enum.StrEnum):
    """Which deviations count as anomalies."""

    UP = "up"
    DOWN = "down"
    BOTH = "both"


@dataclass(frozen=True, slots=True)
class EwmaConfig:
    """Detector parameters. Build with `from_span` or `from_half_life` unless you want a raw ``alpha``."""

    alpha: float
    threshold: float = 4.0
    warmup: int = 20
    min_std: float = 1e-9
    rel_min_std: float = 0.01
    readapt_after: int = 30
    direction: Direction = Direction.BOTH

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        if self.threshold <= 0 or self.warmup < 1 or self.readapt_after < 1:
            raise ValueError("threshold must be > 0, warmup and readapt_after >= 1")
        if self.min_std < 0 or self.rel_min_std < 0:
            raise ValueError("std floors must be >= 0")

    @staticmethod
    def alpha_from_span(span: float) -> float:
        """pandas' convention: alpha = 2 / (span + 1), span >= 1 points."""
        if span < 1:
            raise ValueError("span must be >= 1")
        return 2.0 / (span + 1.0)

    @staticmethod
    def alpha_from_half_life(half_life: float) -> float:
        """A point's weight halves after ``half_life`` points: alpha = 1 - 0.5 ** (1 / half_life)."""
        if half_life <= 0:
            raise ValueError("half_life must be > 0")
        return 1.0 - math.pow(0.5, 1.0 / half_life)


@dataclass(frozen=True, slots=True)
class Observation:
    """The verdict on one point, with the pre-update estimate it was scored against."""

    value: float
    verdict: Verdict
    score: float | None  # (value - mean) / std, None while warming or rejected
    mean: float | None
    std: float | None


class EwmaDetector:
    """Stateful EWMA detector for one series (see module doc)."""

    __slots__ = ("_count", "_mean", "_streak", "_var", "config")

    def __init__(self, config: EwmaConfig) -> None:
        self.config = config
        self._mean = 0.0
        self._var = 0.0
        self._count = 0  # points that taught the estimate
        self._streak = 0  # consecutive outliers

    @property
    def mean(self) -> float | None:
        """Current EW mean (None before the first point)."""
        return self._mean if self._count else None

    @property
    def std(self) -> float | None:
        """Current EW standard deviation, floored (None before the first point)."""
        return self._floored_std() if self._count else None

    def observe(self, value: float) -> Observation:
        """Score ``value`` against the current estimate, then learn from it unless it is an outlier."""
        if not math.isfinite(value):
            return Observation(value, Verdict.REJECTED, None, self.mean, self.std)
        if self._count == 0:
            self._mean, self._count = value, 1
            return Observation(value, Verdict.WARMING, None, None, None)
        mean, std = self._mean, self._floored_std()
        score = (value - mean) / std
        if self._count < self.config.warmup:
            self._learn(value)
            return Observation(value, Verdict.WARMING, None, mean, std)
        if abs(score) < self.config.threshold:
            self._streak = 0
            self._learn(value)
            return Observation(value, Verdict.NORMAL, score, mean, std)
        self._on_outlier(value)
        return Observation(value, self._classify(score), score, mean, std)

    def _classify(self, score: float) -> Verdict:
        direction = self.config.direction
        if (direction is Direction.UP and score < 0) or (direction is Direction.DOWN and score > 0):
            return Verdict.NORMAL  # an outlier the rule does not care about; still kept out of the mean
        return Verdict.ANOMALOUS

    def _on_outlier(self, value: float) -> None:
        self._streak += 1
        if self._streak >= self.config.readapt_after:
            # The level really moved: re-centre on it, keep the learnt noise level.
            self._mean = value
            self._streak = 0

    def _learn(self, value: float) -> None:
        alpha = self.config.alpha
        diff = value - self._mean
        self._mean += alpha * diff
        self._var = (1.0 - alpha) * (self._var + alpha * diff * diff)
        self._count += 1

    def _floored_std(self) -> float:
        floor = max(self.config.min_std, self.config.rel_min_std * abs(self._mean))
        return max(math.sqrt(self._var), floor)
