"""JSON shapes of the dispatcher's answers, shared by the task, worker and admin routes (and the feeds).

Timestamps are ISO 8601 in UTC with milliseconds (`2026-11-27T10:00:00.123+00:00`), `null` when unset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from actors.dispatcher.messages import (
    ClaimedTask,
    CoreStats,
    DispatchAccepted,
    HeartbeatAck,
    TaskStatus,
    TaskView,
)
from actors.storage import StoredEvent

__all__ = [
    "FINAL_STATUSES",
    "TASK_SCHEMA",
    "accepted_json",
    "claim_json",
    "core_stats_json",
    "event_json",
    "heartbeat_json",
    "iso",
    "task_json",
]

FINAL_STATUSES: frozenset[TaskStatus] = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.CANCELLED, TaskStatus.DEAD}
)
"""Statuses a task never leaves on its own (dead only by an operator's requeue)."""


_iso_cache: dict[float, str] = {}
_ISO_CACHE_SIZE = 1024
_last_second: tuple[int, str] = (-(2**62), "")


def iso(ts: float | None) -> str | None:
    """Unix seconds -> ISO 8601 UTC with milliseconds (None stays None).

    The text `datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")` gives, built from the
    cached prefix of the last second (and remembered: a batch's tasks share their timestamps); datetime
    was the costliest part of a dispatch acknowledgement.
    """
    global _last_second
    if ts is None:
        return None
    text = _iso_cache.get(ts)
    if text is not None:
        return text
    fraction, whole = math.modf(ts)
    micros = round(fraction * 1e6)  # half-even to the microsecond, as datetime.fromtimestamp rounds
    if micros >= 1_000_000:
        whole, micros = whole + 1.0, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1.0, micros + 1_000_000
    second = int(whole)
    cached = _last_second
    if cached[0] != second:
        cached = (second, datetime.fromtimestamp(second, UTC).isoformat()[:-6])
        _last_second = cached
    text = f"{cached[1]}.{micros // 1000:03d}+00:00"
    if len(_iso_cache) >= _ISO_CACHE_SIZE:
        _iso_cache.clear()
    _iso_cache[ts] = text
    return text


def _plain(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    # A view's JSON members are plain dicts already (shared, not copied: answers are encoded at once).
    return value if value is None or type(value) is dict else dict(value)


# A status's text and whether it is final, by one dict lookup each (str() of the enum is a call).
_STATUS_TEXT: dict[TaskStatus, str] = {s: s.value for s in TaskStatus}
_FINAL: dict[TaskStatus, bool] = {s: s in FINAL_STATUSES for s in TaskStatus}


def task_json(task: TaskView) -> dict[str, Any]:
    """A task as the API shows it (`task_id` is the seed's name for the id).

    The dicts of `metadata`, `progress` and `result` are the view's own (not copies): encode, do not
    mutate. Timestamps come from `iso`'s cache when they are there (a batch's tasks share them).
    """
    cached = _iso_cache.get
    status, lease, deadline, finished = task.status, task.lease_expires_at, task.deadline_at, task.finished_at
    metadata, progress, result = task.metadata, task.progress, task.result
    not_before, created, updated = task.not_before, task.created_at, task.updated_at
    return {
        "task_id": task.id,
        "core_id": task.core_id,
        "status": _STATUS_TEXT[status],
        "priority": task.priority,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "timeout": task.timeout_s,
        "metadata": metadata if type(metadata) is dict else dict(metadata),
        "stay": task.stay,
        "idempotency_key": task.idempotency_key,
        "not_before": cached(not_before) or iso(not_before),
        "claimed_by": task.claimed_by,
        "lease_expires_at": None if lease is None else cached(lease) or iso(lease),
        "deadline_at": None if deadline is None else cached(deadline) or iso(deadline),
        "cancel_requested": task.cancel_requested,
        "progress": None if progress is None else _plain(progress),
        "result": None if result is None else _plain(result),
        "error": task.error,
        "created_at": cached(created) or iso(created),
        "updated_at": cached(updated) or iso(updated),
        "finished_at": None if finished is None else cached(finished) or iso(finished),
        "finished": _FINAL[status],
    }


def accepted_json(accepted: DispatchAccepted) -> dict[str, Any]:
    """A dispatch answer: the task plus `created`, `queue_position` and `estimated_start`."""
    body = task_json(accepted.task)
    body["created"] = accepted.created
    body["queue_position"] = accepted.queue_position
    start = accepted.estimated_start
    body["estimated_start"] = None if start is None else _iso_cache.get(start) or iso(start)
    return body


def claim_json(claimed: ClaimedTask) -> dict[str, Any]:
    """A claim answer: the task and the lease token that proves ownership."""
    task = claimed.task
    lease = task.lease_expires_at
    return {
        "task": task_json(task),
        "lease_token": claimed.lease_token,
        "lease_expires_at": None if lease is None else _iso_cache.get(lease) or iso(lease),
    }


def heartbeat_json(ack: HeartbeatAck) -> dict[str, Any]:
    """A heartbeat answer: the new lease expiry and whether to stop (cancel requested)."""
    return {
        "task_id": ack.task_id,
        "lease_expires_at": iso(ack.lease_expires_at),
        "cancel_requested": ack.cancel_requested,
    }


def event_json(event: StoredEvent) -> dict[str, Any]:
    """A stored event (`seq` is the SSE id; `ts` also as ISO in `time`)."""
    body = event.as_dict()
    body["time"] = iso(event.ts)
    return body


def core_stats_json(stats: CoreStats) -> dict[str, Any]:
    """Queue figures of one core."""
    return {
        "core_id": stats.core_id,
        "queued": stats.queued,
        "queued_by_priority": {str(p): n for p, n in sorted(stats.queued_by_priority.items())},
        "oldest_queued_age_s": stats.oldest_queued_age_s,
        "claimed": stats.claimed,
        "running": stats.running,
        "retrying": stats.retrying,
        "waiting_workers": stats.waiting_workers,
        "completions_per_s": round(stats.completions_per_s, 3),
        "claims_per_s": round(stats.claims_per_s, 3),
    }


_TS = {"type": ["string", "null"], "format": "date-time"}
TASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "task_id": {"type": "string"},
        "core_id": {"type": "string"},
        "status": {"enum": [s.value for s in TaskStatus]},
        "priority": {"type": "integer"},
        "attempts": {"type": "integer"},
        "max_attempts": {"type": "integer"},
        "timeout": {"type": ["number", "null"]},
        "metadata": {"type": "object"},
        "stay": {"type": "boolean"},
        "idempotency_key": {"type": ["string", "null"]},
        "not_before": _TS,
        "claimed_by": {"type": ["string", "null"]},
        "lease_expires_at": _TS,
        "deadline_at": _TS,
        "cancel_requested": {"type": "boolean"},
        "progress": {"type": ["object", "null"]},
        "result": {"type": ["object", "null"]},
        "error": {"type": ["string", "null"]},
        "created_at": _TS,
        "updated_at": _TS,
        "finished_at": _TS,
        "finished": {"type": "boolean"},
    },
    "required": ["task_id", "core_id", "status", "priority", "attempts", "created_at", "finished"],
}
"""JSON schema of `task_json` (for the OpenAPI document)."""
