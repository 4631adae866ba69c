"""The monitor actor: metrics history, EWMA anomaly detection, alert rules, self-healing, notifications.

Wiring (the node)::

    from actors.monitor import MetricsStore, MonitorActor, MonitorSettings, DatabaseEventSink

    async with MetricsStore.open(data_dir / "metrics.db") as metrics:          # outlives monitor restarts
        worker("monitor", lambda: MonitorActor(
            settings, metrics,
            samples=node_samples,            # SampleSource: the node's application metrics
            recovery=node_recovery,          # RecoveryPort: supervisor restarts, core isolation, rollback
            events=DatabaseEventSink(orch_db),   # alert.firing / alert.resolved / recovery.executed
            notifier=notifier_ref,           # ActorRef[NotifierMsg]; told with tell_nowait
        ))

Other actors import only `actors.monitor.messages`.
"""

from .actor import MonitorActor
from .ports import DatabaseEventSink, EventSink, RecoveryPort, SampleSource
from .settings import (
    DEFAULT_POLICIES,
    DEFAULT_RULES,
    ActionKind,
    AlertRule,
    Anomaly,
    MonitorSettings,
    Op,
    RecoveryPolicy,
    Threshold,
)
from .store import MetricsStore

__all__ = [
    "DEFAULT_POLICIES",
    "DEFAULT_RULES",
    "ActionKind",
    "AlertRule",
    "Anomaly",
    "DatabaseEventSink",
    "EventSink",
    "MetricsStore",
    "MonitorActor",
    "MonitorSettings",
    "Op",
    "RecoveryPolicy",
    "RecoveryPort",
    "SampleSource",
    "Threshold",
]
