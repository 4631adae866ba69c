"""Assembling `CoreStats` from stored counts and the actor's live figures."""

from __future__ import annotations

from .ledger import Ledger
from .messages import CoreStats, TaskStatus
from .store import CoreCounts


def core_stats(core: str, counts: CoreCounts | None, waiting: int, ledger: Ledger, now: float) -> CoreStats:
    """One core's figures: stored depth and age, live waiting workers and rates."""
    by_status = counts.by_status if counts is not None else {}
    oldest = counts.oldest_due_since if counts is not None else None
    return CoreStats(
        core_id=core,
        queued=by_status.get(TaskStatus.QUEUED, 0),
        queued_by_priority=dict(counts.queued_by_priority) if counts is not None else {},
        oldest_queued_age_s=None if oldest is None else max(0.0, now - oldest),
        claimed=by_status.get(TaskStatus.CLAIMED, 0),
        running=by_status.get(TaskStatus.RUNNING, 0),
        retrying=by_status.get(TaskStatus.RETRYING, 0),
        waiting_workers=waiting,
        completions_per_s=ledger.completions[core].rate(now),
        claims_per_s=ledger.claims[core].rate(now),
    )
