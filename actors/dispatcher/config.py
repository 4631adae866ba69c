"""Tunables of the dispatcher actor (the store's own policies live in `sqlite_ops.Rules`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DispatcherConfig:
    """How often the actor sweeps, how it batches writes, and what time it is.

    Client writes are coalesced: up to ``write_parallelism`` flushers each run everything queued (up to
    ``write_batch`` tasks) as one store write; past ``max_queued_writes`` queued tasks the actor stops
    taking messages (backpressure). ``max_inflight`` bounds concurrent reads.

    ``clock`` returns unix seconds; tests pass one driven by Trio's mock clock. Lease expiry and
    timeouts are enforced by a sweep every ``sweep_interval_s``, so they act up to that much late.
    ``max_worker_batch`` bounds the tasks of one `ClaimMany` and the items of one `HeartbeatMany` /
    `ReportMany`.
    """

    sweep_interval_s: float = 1.0
    sweep_batch: int = 500
    retention_s: float = 7 * 86_400.0
    retention_interval_s: float = 60.0
    prune_batch: int = 200
    max_inflight: int = 1024
    write_parallelism: int = 2
    write_batch: int = 2000
    max_queued_writes: int = 20_000
    claim_batch: int = 256
    max_dispatch_batch: int = 10_000
    max_worker_batch: int = 1000
    clock: Callable[[], float] = time.time
