"""Tunables of the dispatcher actor (the store's own policies live in `sqlite_ops.Rules`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DispatcherConfig:
    """How often the actor sweeps, how much it does per write, and what time it is.

    ``clock`` returns unix seconds; tests pass one driven by Trio's (autojump) clock. Lease expiry and
    timeouts are enforced by a sweep every ``sweep_interval_s``, so they act up to that much late.
    """

    sweep_interval_s: float = 1.0
    sweep_batch: int = 500
    retention_s: float = 7 * 86_400.0
    retention_interval_s: float = 60.0
    prune_batch: int = 200
    max_inflight: int = 4096
    claim_batch: int = 256
    max_dispatch_batch: int = 10_000
    clock: Callable[[], float] = time.time
