"""The node's domain metrics on its registry: task/lock/security events, webhooks, queue and lock gauges.

Nothing here sits on the dispatch path. Event counters are fed from the committed-event stream (a
`node.event_sinks` entry: per committed batch, one dict update per event and one increment per event type,
on the Trio thread after commit). Queue and lock gauges come from the node's one state poller
(`orch.domain_gauges`), which the monitor's sample source reads too. Webhooks are counted by the webhook
route through `counted_verification`.

Series (label sets are fixed; anything unknown is "other"):
- `orch_task_events_total{type}`: task.* events by type (queued, claimed, running, succeeded, ...);
- `orch_lock_events_total{type}`, `orch_security_events_total{type}`: lock.* / published security.* events;
- `orch_webhooks_total{scheme,outcome}` and `orch_webhook_verification_duration_seconds{scheme}`;
- `orch_queue_depth{core,priority_band}`, `orch_queue_oldest_age_seconds{core}`, `orch_tasks_running{core}`,
  `orch_queue_cores`, `orch_locks_held`, `orch_lock_waiters`, `orch_lock_wait_seconds` (histogram).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram

from actors.dispatcher.messages import TaskStatus
from actors.security.messages import RateLimited, SecurityMsg, WebhookVerdict
from actors.storage import StoredEvent
from orch.domain_gauges import StateCollector, StateRefresher
from runtime import ActorRef, Reply

if TYPE_CHECKING:
    from orch.node import Node

__all__ = [
    "LOCK_EVENTS",
    "SECURITY_EVENTS",
    "TASK_EVENTS",
    "WEBHOOK_OUTCOMES",
    "WEBHOOK_SCHEMES",
    "DomainMetrics",
    "EventMetrics",
    "WebhookMetrics",
    "attach_domain_metrics",
    "counted_verification",
]

_log = logging.getLogger("orch.metrics")

OTHER = "other"
TASK_EVENTS = (*(s.value for s in TaskStatus), "progress", "cancel_requested")
LOCK_EVENTS = ("acquired", "released", "extended", "expired", "refused")
# The security events the security actor publishes on the feed (the rest stay in the audit trail only).
SECURITY_EVENTS = (
    "user_created",
    "user_disabled",
    "user_enabled",
    "role_changed",
    "password_reset",
    "token_issued",
    "token_revoked",
    "account_locked",
    "refresh_reuse_detected",
    "rate_limits_changed",
)
WEBHOOK_SCHEMES = ("signature", "github", "standard", "none")
# Verification outcomes: accepted, or refused as a malformed header (400), a bad/stale/missing signature
# (401), a replay (409), another refusal; "error" when the security actor could not answer (503).
WEBHOOK_OUTCOMES = ("accepted", "bad_header", "bad_signature", "replayed", "rejected", "error")
_VERDICT_OUTCOME = {400: "bad_header", 401: "bad_signature", 409: "replayed"}
_VERIFY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class EventMetrics:
    """Counters of committed task.*, lock.* and security.* events; `record` is the node's event sink."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.task = Counter(
            "orch_task_events", "Committed task events, by type.", ["type"], registry=registry
        )
        self.lock = Counter(
            "orch_lock_events", "Committed lock events, by type.", ["type"], registry=registry
        )
        self.security = Counter(
            "orch_security_events",
            "Published security events (admin changes, lockouts, token reuse), by type.",
            ["type"],
            registry=registry,
        )
        families: list[tuple[str, Counter, tuple[str, ...]]] = [
            ("task", self.task, TASK_EVENTS),
            ("lock", self.lock, LOCK_EVENTS),
            ("security", self.security, SECURITY_EVENTS),
        ]
        # Every series exists from the start (rate() needs its zero); children are cached: the sink is hot.
        self._children = {
            f"{prefix}.{name}": counter.labels(name) for prefix, counter, names in families for name in names
        }
        self._other = {f"{prefix}.": counter.labels(OTHER) for prefix, counter, _ in families}

    def record_many(self, events: Sequence[StoredEvent]) -> None:
        """The node's event sink: count a committed batch's events, one increment per type (other families
        — actor.*, alert.*, core.* — are ignored)."""
        counts: dict[str, int] = {}
        for event in events:
            counts[event.type] = counts.get(event.type, 0) + 1
        for type_, n in counts.items():
            self._count(type_, n)

    def _count(self, event_type: str, n: int) -> None:
        child = self._children.get(event_type)
        if child is None:
            dot = event_type.find(".")
            child = self._other.get(event_type[: dot + 1]) if dot > 0 else None
            if child is None:
                return
        child.inc(n)


class WebhookMetrics:
    """Webhook deliveries by scheme and verification outcome, and how long verification took."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.total = Counter(
            "orch_webhooks",
            "Webhook deliveries by signature scheme and verification outcome.",
            ["scheme", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "orch_webhook_verification_duration_seconds",
            "Time to verify a webhook's signature (security actor round trip included).",
            ["scheme"],
            buckets=_VERIFY_BUCKETS,
            registry=registry,
        )
        # Every series exists from the start; children are cached (`labels()` is a locked lookup plus
        # validation, ~2 us, twice per delivery otherwise).
        self._durations = {scheme: self.duration.labels(scheme) for scheme in WEBHOOK_SCHEMES}
        self._totals = {
            (scheme, outcome): self.total.labels(scheme, outcome)
            for scheme in WEBHOOK_SCHEMES
            for outcome in WEBHOOK_OUTCOMES
        }

    def observe(self, verdict: WebhookVerdict | None, seconds: float) -> None:
        """Record one verification; `None`: the security actor failed to answer."""
        if verdict is None:
            scheme, outcome = "none", "error"
        else:
            scheme = verdict.scheme if verdict.scheme in WEBHOOK_SCHEMES else "none"
            outcome = "accepted" if verdict.ok else _VERDICT_OUTCOME.get(verdict.status, "rejected")
        self._totals[scheme, outcome].inc()
        self._durations[scheme].observe(seconds)


class DomainMetrics:
    """The node's domain metric families (see module doc), registered on the node's registry, and the
    node's one actor-state poller (`refresher`, which the monitor's sample source reads through `state`)."""

    def __init__(self, node: Node) -> None:
        registry = node.metrics.registry
        self.events = EventMetrics(registry)
        self.webhooks = WebhookMetrics(registry)
        self.state = StateCollector()
        registry.register(self.state)
        max_cores = node.config.monitoring.metrics_max_cores
        self.refresher = StateRefresher(node, self.state, max_cores=max_cores)


async def counted_verification(
    node: Node,
    security: ActorRef[SecurityMsg],
    make: Callable[[Reply[WebhookVerdict]], SecurityMsg],
) -> WebhookVerdict:
    """Ask the security actor to verify a webhook (`ask_nowait`: a full mailbox sheds load) and count it
    (scheme, outcome, duration); errors are counted as outcome "error" and re-raised. A delivery refused by
    the rate limit (when ``make`` asks for one) is not a verification and is not counted."""
    metrics = node.domain_metrics
    started = time.perf_counter()
    try:
        verdict = await security.ask_nowait(make)
    except RateLimited:
        raise
    except Exception:
        if metrics is not None:
            metrics.webhooks.observe(None, time.perf_counter() - started)
        raise
    if metrics is not None:
        metrics.webhooks.observe(verdict, time.perf_counter() - started)
    return verdict


def attach_domain_metrics(node: Node) -> DomainMetrics:
    """Register the families, subscribe to committed events, and start the state refresher once the node
    has started (in `node.nursery`; it ends with the node). Call before the database opens; other readers
    of the snapshot (the monitor) register their cadence with `refresher.want` before the node starts."""
    metrics = DomainMetrics(node)
    node.event_sinks.append(metrics.events.record_many)
    metrics.refresher.want(node.config.monitoring.metrics_refresh_interval)

    async def start(started: Node) -> None:
        if started.nursery is not None:
            started.nursery.start_soon(metrics.refresher.run)

    node.on_started.append(start)
    return metrics
