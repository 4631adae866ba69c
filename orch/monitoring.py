"""Wiring the monitor and the notifier into the node.

`open_monitoring(node, stack)` runs before the supervision tree starts: it builds the settings from
`config.monitoring` / `config.notifications`, opens `data/metrics.db` (it outlives monitor restarts) and
puts a `Monitoring` on the node. `monitor_specs(node)` then gives the notifier and monitor child specs
(placed after the dispatcher and locks in `orch.wiring.actor_specs`). Once the tree is up, the rate limits
become a runtime setting (`security.rate_limits`) whose changes are reported to the monitor. The sample
source reads the node's state snapshot (`orch.domain_gauges`); `open_monitoring` asks that one poller to
run at least every monitor interval and to include core health.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from actors.monitor import MetricsStore, MonitorActor, MonitorSettings
from actors.monitor.config import settings_from_mapping
from actors.monitor.messages import MonitorMsg, SettingChanged
from actors.monitor.ports import DatabaseEventSink
from actors.notifier import (
    Channel,
    EmailChannel,
    NotifierActor,
    NotifierSettings,
    SlackChannel,
    SmtpSecurity,
    WebhookChannel,
)
from actors.notifier.messages import NotifierMsg
from actors.security.messages import GetRateLimits, RatePolicy, SetRateLimits
from orch.config import Config, ConfigError
from orch.monitor_cores import DispatcherCores
from orch.monitor_recovery import NodeRecovery
from orch.monitor_samples import NodeSamples
from orch.runtime_settings import RuntimeSettings
from runtime import ActorError, ActorRef, ChildSpec, worker

if TYPE_CHECKING:
    from orch.node import Node

__all__ = [
    "RATE_LIMITS",
    "Monitoring",
    "monitor_settings",
    "monitor_specs",
    "notifier_settings",
    "open_monitoring",
    "policies_from_json",
    "policies_to_json",
]

_log = logging.getLogger("orch.monitor")

RATE_LIMITS = "security.rate_limits"
DAY = 86_400.0


@dataclass(slots=True)
class Monitoring:
    """The node's monitoring handles (the HTTP layer reads them)."""

    settings: MonitorSettings
    notifier_settings: NotifierSettings
    store: MetricsStore
    samples: NodeSamples
    recovery: NodeRecovery
    runtime_settings: RuntimeSettings
    monitor: ActorRef[MonitorMsg] | None = None
    notifier: ActorRef[NotifierMsg] | None = None


# ------------------------------------------------------------------------------------------------ settings
def monitor_settings(config: Config) -> MonitorSettings:
    """`config.monitoring` -> `MonitorSettings`; the rules file (if any) overlays the two config keys."""
    mon = config.monitoring
    base = MonitorSettings(
        interval_s=mon.sample_interval,
        retention_s=mon.retention_days * DAY,
        disk_paths=("/", str(config.database.data_dir)),
    )
    if mon.rules_file is None:
        return base
    data = _read_yaml(mon.rules_file)
    try:
        return settings_from_mapping(data, base)
    except ValueError as exc:
        raise ConfigError(f"monitoring.rules_file: {exc}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"monitoring.rules_file: file not found: {path}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"monitoring.rules_file: cannot read {path}: {type(exc).__name__}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError("monitoring.rules_file: must be a mapping (rules, policies, ...)")
    return loaded


def notifier_settings(config: Config) -> NotifierSettings:
    """`config.notifications` -> channels named ``slack``, ``webhook`` and ``email`` (those configured)."""
    n = config.notifications
    channels: list[Channel] = []
    if n.slack_webhook_url:
        channels.append(SlackChannel("slack", n.slack_webhook_url))
    try:
        if n.webhook_url:
            channels.append(WebhookChannel("webhook", n.webhook_url, secret=n.webhook_secret))
    except ValueError:  # the signing key is malformed; the message never contains it
        raise ConfigError("notifications.webhook_secret: must be whsec_<base64> or whsk_<base64>") from None
    if n.smtp_host:
        if not n.email_from or not n.email_to:
            raise ConfigError("notifications.email_from and notifications.email_to are needed with smtp_host")
        channels.append(
            EmailChannel(
                "email",
                n.smtp_host,
                n.email_from,
                tuple(n.email_to),
                port=n.smtp_port,
                security=SmtpSecurity(n.smtp_security),
                username=n.smtp_username,
                password=n.smtp_password,
            )
        )
    return NotifierSettings(channels=tuple(channels))


# ------------------------------------------------------------------------------------------------- wiring
async def open_monitoring(node: Node, stack: AsyncExitStack) -> None:
    """Build the settings and open metrics.db on ``stack`` (before the supervisor starts)."""
    if not node.config.monitoring.enabled:
        return
    settings = monitor_settings(node.config)
    notify = notifier_settings(node.config)
    path = node.config.database.data_dir / "metrics.db"
    store = await stack.enter_async_context(MetricsStore.open(path))
    gauges = node.domain_metrics
    if gauges is None:  # the sample source reads the snapshot that attach_domain_metrics' poller keeps
        raise RuntimeError("attach_domain_metrics must run before open_monitoring")
    gauges.refresher.want(settings.interval_s, core_health=True)
    registry = RuntimeSettings()
    samples = NodeSamples(node, gauges.state)
    recovery = NodeRecovery(node, registry, DispatcherCores(node))
    node.monitoring = Monitoring(settings, notify, store, samples, recovery, registry)
    node.on_started.append(_after_start)


def monitor_specs(node: Node) -> list[ChildSpec]:
    """The notifier and monitor child specs (empty when monitoring is disabled)."""
    m = node.monitoring
    if m is None:
        return []
    notifier = worker("notifier", lambda: NotifierActor(m.notifier_settings), capacity=1000)
    events = DatabaseEventSink(node.database())

    def monitor() -> MonitorActor:
        return MonitorActor(
            m.settings,
            m.store,
            samples=m.samples,
            recovery=m.recovery,
            events=events,
            notifier=notifier.ref,
        )

    spec = worker("monitor", monitor, capacity=1000)
    m.notifier, m.monitor = notifier.ref, spec.ref
    return [notifier, spec]


async def _after_start(node: Node) -> None:
    m = node.monitoring
    if m is None:
        return
    if node.security is not None:
        security = node.security
        current = await security.ask(GetRateLimits)

        async def apply(value: Any) -> None:
            policies = policies_from_json(value)
            await security.ask(lambda r: SetRateLimits(policies, "runtime-settings", r, replace_all=True))

        m.runtime_settings.register(RATE_LIMITS, apply, policies_to_json(current))
    m.runtime_settings.on_change(lambda key, at: _tell_monitor(m, key, at))


def _tell_monitor(m: Monitoring, key: str, at: float) -> None:
    if m.monitor is None:
        return
    try:
        m.monitor.tell_nowait(SettingChanged(key, at))
    except ActorError as exc:  # a full or stopped monitor: the change is still recorded in the registry
        _log.warning("could not tell the monitor about %s: %s", key, type(exc).__name__)


# ------------------------------------------------------------------------------------------- rate limits
def policies_to_json(policies: Any) -> dict[str, str]:
    """``{"read": "1200/60", "write": "600/60/50"}`` (limit/window seconds[/burst])."""
    out: dict[str, str] = {}
    for name, p in sorted(dict(policies).items()):
        burst = "" if p.burst is None else f"/{p.burst}"
        out[name] = f"{p.limit}/{p.window:g}{burst}"
    return out


def policies_from_json(value: Any) -> dict[str, RatePolicy]:
    """Parse `policies_to_json`'s shape; ValueError naming the class on a bad entry."""
    if not isinstance(value, dict):
        raise ValueError("rate limits must be an object of CLASS: 'LIMIT/WINDOW[/BURST]'")
    out: dict[str, RatePolicy] = {}
    for name, spec in value.items():
        parts = str(spec).split("/")
        try:
            if not 2 <= len(parts) <= 3:
                raise ValueError(spec)
            burst = int(parts[2]) if len(parts) == 3 else None
            out[str(name)] = RatePolicy(str(name), int(parts[0]), float(parts[1]), burst)
        except ValueError:
            raise ValueError(f"{name}: must look like LIMIT/WINDOW_SECONDS[/BURST], e.g. 600/60") from None
    return out
