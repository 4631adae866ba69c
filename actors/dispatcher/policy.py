"""Pure scheduling rules: priority with aging, retry backoff with jitter, throughput and start estimates.

Priority and aging
------------------
Every queued task carries ``rank = eligible_at - priority * aging_interval`` where ``eligible_at`` is when it
(re-)entered the queue (its ``not_before``, which defaults to the dispatch time). Claims take the smallest
rank first (ties: dispatch order). So one priority step is worth ``aging_interval`` seconds of waiting:

* higher priority first: at equal eligibility, a larger priority has a smaller rank;
* FIFO within a priority: equal priorities compare by ``eligible_at``, then dispatch order;
* bounded overtaking: a task T (priority p, eligible at e) can only be overtaken by a task U (priority
  p', eligible at e') with ``e' - p'*A < e - p*A``, i.e. ``e' < e + (p' - p)*A <= e + (PRIORITY_MAX - p)*A``.
  No task that becomes eligible after ``e + (PRIORITY_MAX - p) * A`` is ever claimed before T, so under any
  stream of higher-priority work T waits at most that window plus the time to drain what was queued ahead
  of it by then (`AgingRule.overtake_window`).

The rank is a plain column, so claiming stays one ordered index scan (no per-claim recomputation of an
effective priority) — the same rule works in SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import math
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .messages import PRIORITY_MAX, PRIORITY_MIN, InvalidTask, TaskSpec


@dataclass(frozen=True, slots=True)
class AgingRule:
    """``rank = eligible_at - priority * interval_s`` (see the module docstring)."""

    interval_s: float = 1.0

    def rank(self, eligible_at: float, priority: int) -> float:
        """The claim order key of a task that entered the queue at ``eligible_at``."""
        return eligible_at - priority * self.interval_s

    def overtake_window(self, priority: int, max_priority: int = PRIORITY_MAX) -> float:
        """Seconds after its eligibility during which later tasks can still be claimed before a task."""
        return max(0, max_priority - priority) * self.interval_s


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits ``min(cap, base * factor**(n-1))``, minus up to
    ``jitter`` of it at random (so retries of tasks that failed together spread out)."""

    base_s: float = 1.0
    factor: float = 2.0
    cap_s: float = 300.0
    jitter: float = 0.5

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before the retry that follows failed attempt number ``attempt`` (1-based)."""
        exponent = min(max(attempt - 1, 0), 64)
        delay = min(self.cap_s, self.base_s * self.factor**exponent)
        return delay * (1.0 - self.jitter * rng.random())


class RateMeter:
    """Events per second over a sliding window, in one-second buckets (cheap to update and to read: the
    window's total is kept as buckets come and go, so a read does not sum them)."""

    __slots__ = ("_buckets", "_total", "_window")

    def __init__(self, window_s: int = 60) -> None:
        self._window = window_s
        self._buckets: deque[list[int]] = deque()  # [second, count], oldest first
        self._total = 0  # the sum of the buckets' counts

    def add(self, now: float, count: int = 1) -> None:
        """Record ``count`` events at ``now``."""
        second = int(now)
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += count
        else:
            buckets.append([second, count])
        self._total += count
        if buckets[0][0] <= second - self._window:
            self._trim(second)

    def rate(self, now: float) -> float:
        """Events per second over the window ending at ``now``."""
        buckets = self._buckets
        if buckets and buckets[0][0] <= int(now) - self._window:
            self._trim(int(now))
        return self._total / self._window

    def _trim(self, second: int) -> None:
        buckets = self._buckets
        while buckets and buckets[0][0] <= second - self._window:
            self._total -= buckets.popleft()[1]


def estimate_start(now: float, ahead: int, idle_workers: int, rate_per_s: float) -> float | None:
    """When a task with ``ahead`` tasks before it should be claimed, given workers waiting and throughput."""
    if ahead < idle_workers:
        return now
    if rate_per_s <= 0.0:
        return None
    return now + (ahead - idle_workers + 1) / rate_per_s


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
# Types orjson would write but the stdlib encoder handles differently (subclasses) or refuses (dataclasses,
# dates) go to the stdlib encoder, so what is accepted and what is refused stays the same.
_ORJSON_STRICT = (
    orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
)


def encode_json(value: Mapping[str, Any], field: str) -> str:
    """Compact JSON text of ``value``, or `InvalidTask` if it is not a JSON object of plain values.

    orjson first (~10x faster than json on a typical payload). It writes NaN and infinities as null, so
    any text with a null in it is encoded again by the stdlib encoder, which refuses them (allow_nan=False);
    so does anything orjson refuses (non-str keys, ints beyond 64 bits), to be accepted or refused as before.
    Non-ASCII text is written as UTF-8 rather than \\u escapes: the same JSON value. (Unlike json, orjson
    also writes UUIDs and plain enums, as strings and their values.)
    """
    if type(value) is not dict and not isinstance(value, Mapping):  # the ABC check costs ~2,000 instr
        raise InvalidTask(f"{field} must be a JSON object")
    try:
        text = orjson.dumps(value, option=_ORJSON_STRICT).decode()
        if "null" not in text:  # cheaper on str than on bytes; UTF-8 puts no ASCII byte in a multibyte one
            return text
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        pass
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as error:
        raise InvalidTask(f"{field} is not valid JSON: {error}") from None


def validate_spec(spec: TaskSpec) -> str:
    """Raise `InvalidTask` if a field of ``spec`` is out of range; returns the metadata as JSON text.

    Encoding here, on the way in, keeps a bad payload from ever failing a shared write batch.
    """
    if not spec.core_id or len(spec.core_id) > 200:
        raise InvalidTask("core_id must be 1..200 characters")
    if not PRIORITY_MIN <= spec.priority <= PRIORITY_MAX:
        raise InvalidTask(f"priority must be within [{PRIORITY_MIN}, {PRIORITY_MAX}]")
    if not 1 <= spec.max_attempts <= 1000:
        raise InvalidTask("max_attempts must be within [1, 1000]")
    if spec.timeout is not None and not (0 < spec.timeout < math.inf):
        raise InvalidTask("timeout must be a positive number of seconds")
    if spec.not_before is not None and not math.isfinite(spec.not_before):
        raise InvalidTask("not_before must be a finite unix time")
    if spec.idempotency_key is not None and not 0 < len(spec.idempotency_key) <= 200:
        raise InvalidTask("idempotency_key must be 1..200 characters")
    return encode_json(spec.metadata, "metadata") if spec.metadata else "{}"


def validate_lease(lease_s: float) -> None:
    """Raise `InvalidTask` unless ``lease_s`` is a sane lease length."""
    if not 0 < lease_s <= 86_400:
        raise InvalidTask("lease must be within (0, 86400] seconds")
