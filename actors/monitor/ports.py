"""The monitor's boundaries: what the node implements for it (typing.Protocol ports).

The monitor imports nothing of ``orch``; the node hands it objects that satisfy these protocols.

**SampleSource** returns the application's own metrics as a flat mapping of series key -> value (see
`actors.monitor.series` for the key format). Names the default rules use::

    http_requests_per_s, http_error_ratio (5xx / all, 0..1), http_p95_seconds
    queue_depth{priority="<p>"}, oldest_queued_age_seconds{core="<c>"}, tasks_active, lease_expiries_total
    locks_active, lock_wait_p95_seconds
    actor_down{actor="<id>"} (1 when the supervisor child is not running), actor_restarts_total{actor=...},
    actor_mailbox_depth{actor=...}
    core_heartbeat_age_seconds{core="<c>"} (seconds since a worker of that core last heart-beat)
    workers_connected, sse_connections
    db_errors_total, auth_failures_total

Keys whose name ends in ``_total`` are counters: the monitor also derives ``<name without _total>_per_s``.
``sample()`` runs on the Trio thread every interval, so it must be cheap and non-blocking (read in-memory
counters; never touch the database).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from actors.storage import Database


class SampleSource(Protocol):
    """Application metrics the node exposes."""

    def sample(self) -> Mapping[str, float]:
        """Current values; cheap, non-blocking, called on the Trio thread."""
        ...


class RecoveryPort(Protocol):
    """Actions on the rest of the node. Each may raise; the monitor records the failure as the outcome."""

    async def restart_actor(self, actor_id: str) -> None:
        """Restart a supervised actor (``Supervisor.restart_child``)."""
        ...

    async def requeue_core(self, core_id: str) -> int:
        """Re-queue the work held by a core whose worker stopped heart-beating; returns how many tasks."""
        ...

    async def isolate_core(self, core_id: str, fallback: str | None) -> None:
        """Take a core out of rotation: its tasks wait, or go to ``fallback`` when given."""
        ...

    async def restore_core(self, core_id: str) -> None:
        """Put an isolated core back into rotation."""
        ...

    async def rollback_setting(self, key: str) -> str:
        """Revert runtime setting ``key`` to its last known good version; returns a description of it."""
        ...


class EventSink(Protocol):
    """Where ``alert.firing``, ``alert.resolved`` and ``recovery.executed`` go: the node's event feed."""

    async def emit(
        self,
        type: str,
        *,
        subject: str | None = None,
        core_id: str | None = None,
        data: Mapping[str, Any],
    ) -> None:
        """Durably record one event (returns after commit)."""
        ...


class DatabaseEventSink:
    """`EventSink` on the node's shared `actors.storage.Database` (orch.db): events get a seq and are
    published on the broadcast like every other event."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def emit(
        self,
        type: str,
        *,
        subject: str | None = None,
        core_id: str | None = None,
        data: Mapping[str, Any],
    ) -> None:
        """Write the event in its own (group-committed) transaction."""
        await self._db.write(lambda tx: tx.emit(type, subject=subject, core_id=core_id, data=data))
