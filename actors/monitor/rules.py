"""The alert rule engine: pure state machines over injected samples and an injected clock.

Per (rule, series) an alert is inactive -> pending (condition holds) -> firing (held for ``for_s``) ->
resolved (condition stopped holding, or the series disappeared). A pending alert whose condition stops
holding is dropped without ever firing, so a flap shorter than ``for_s`` raises nothing. Identity is the
fingerprint of the alert's labels (rule labels + series labels + ``alertname``), so one breach is one alert
however many evaluations see it. Notification bookkeeping (repeat interval) lives here too; grouping and
silences are applied by the caller.
"""

from __future__ import annotations

import enum
import hashlib
import math
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .ewma import EwmaDetector, Verdict
from .messages import Alert, AlertState
from .series import matches, parse_series
from .settings import AlertRule, Anomaly, Threshold


class Change(enum.StrEnum):
    """What an evaluation did to an alert."""

    PENDING = "pending"  # condition started holding, waiting out `for`
    FIRING = "firing"  # fired (once per episode)
    RESOLVED = "resolved"  # a firing alert stopped
    DROPPED = "dropped"  # a pending alert stopped before firing


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change produced by `RuleEngine.evaluate`."""

    change: Change
    alert: Alert


@dataclass(slots=True)
class _RuleState:
    rule: AlertRule
    alerts: dict[str, Alert] = field(default_factory=dict)  # series key -> pending/firing alert
    detectors: dict[str, EwmaDetector] = field(default_factory=dict)


class RuleEngine:
    """Evaluates rules over samples; holds the pending and firing alerts (see module doc)."""

    def __init__(self, rules: Sequence[AlertRule], *, repeat_interval_s: float) -> None:
        self._rules = [_RuleState(rule) for rule in rules]
        self._repeat = repeat_interval_s

    def evaluate(self, now: float, samples: Mapping[str, float]) -> list[Transition]:
        """Advance every rule with this round of samples (taken at ``now``); return what changed."""
        by_name: dict[str, list[tuple[str, dict[str, str], float]]] = {}
        for key, value in samples.items():
            name, labels = parse_series(key)
            by_name.setdefault(name, []).append((key, labels, value))
        out: list[Transition] = []
        for state in self._rules:
            out.extend(self._evaluate_rule(state, now, by_name.get(state.rule.metric, [])))
        return out

    def active(self) -> list[Alert]:
        """Every pending or firing alert."""
        return [alert for state in self._rules for alert in state.alerts.values()]

    def due_notifications(self, now: float) -> list[Alert]:
        """Firing alerts never notified, or last notified at least the repeat interval ago."""
        return [
            alert
            for alert in self.active()
            if alert.state is AlertState.FIRING
            and (alert.last_notified_at is None or now - alert.last_notified_at >= self._repeat)
        ]

    def mark_notified(self, fingerprints: Iterable[str], now: float) -> None:
        """Record that these alerts were just notified (restarts their repeat interval)."""
        wanted = set(fingerprints)
        for state in self._rules:
            for key, alert in state.alerts.items():
                if alert.fingerprint in wanted:
                    state.alerts[key] = replace(alert, last_notified_at=now)

    def restore(self, alerts: Iterable[Alert]) -> None:
        """Re-adopt pending/firing alerts persisted by an earlier incarnation (unknown rules are ignored)."""
        rules = {state.rule.name: state for state in self._rules}
        for alert in alerts:
            state = rules.get(alert.rule)
            if state is not None and alert.state is not AlertState.RESOLVED:
                state.alerts[alert.series] = alert

    def _evaluate_rule(
        self, state: _RuleState, now: float, series: list[tuple[str, dict[str, str], float]]
    ) -> list[Transition]:
        rule, out = state.rule, []
        seen: set[str] = set()
        for key, labels, value in series:
            if not matches(labels, rule.match):
                continue
            seen.add(key)
            breach = self._breach(state, key, value)
            if breach is None:
                continue  # no data (NaN) or warming up: leave the alert as it is
            if breach:
                out.extend(self._hold(state, now, key, labels, value))
            elif key in state.alerts:
                out.append(self._end(state, now, key))
        for key in [k for k in state.alerts if k not in seen]:
            out.append(self._end(state, now, key))  # the series disappeared
        return out

    def _breach(self, state: _RuleState, key: str, value: float) -> bool | None:
        cond = state.rule.condition
        if isinstance(cond, Threshold):
            return None if math.isnan(value) else cond.op.holds(value, cond.value)
        assert isinstance(cond, Anomaly)
        detector = state.detectors.get(key)
        if detector is None:
            detector = state.detectors[key] = EwmaDetector(cond.config)
        verdict = detector.observe(value).verdict
        if verdict is Verdict.REJECTED or verdict is Verdict.WARMING:
            return None
        return verdict is Verdict.ANOMALOUS

    def _hold(
        self, state: _RuleState, now: float, key: str, labels: dict[str, str], value: float
    ) -> list[Transition]:
        rule, out = state.rule, []
        alert = state.alerts.get(key)
        if alert is None:
            alert = _new_alert(rule, key, labels, value, now)
            if rule.for_s > 0:
                out.append(Transition(Change.PENDING, alert))
        if alert.state is AlertState.PENDING and now - alert.active_at >= rule.for_s:
            alert = replace(alert, state=AlertState.FIRING, fired_at=now)
            out.append(Transition(Change.FIRING, _with_value(alert, rule, value)))
        state.alerts[key] = _with_value(alert, rule, value)
        return out

    def _end(self, state: _RuleState, now: float, key: str) -> Transition:
        alert = state.alerts.pop(key)
        if alert.state is AlertState.FIRING:
            return Transition(Change.RESOLVED, replace(alert, state=AlertState.RESOLVED, resolved_at=now))
        return Transition(Change.DROPPED, alert)


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable 16-hex-digit identity for a label set."""
    text = "\x00".join(f"{k}\x01{labels[k]}" for k in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _new_alert(rule: AlertRule, key: str, series_labels: dict[str, str], value: float, now: float) -> Alert:
    labels = {**series_labels, **rule.labels, "alertname": rule.name, "severity": rule.severity.value}
    group = ",".join(f"{g}={labels.get(g, '')}" for g in rule.group_by)
    return Alert(
        fingerprint=fingerprint(labels),
        rule=rule.name,
        series=key,
        labels=labels,
        state=AlertState.PENDING,
        severity=rule.severity,
        summary="",
        value=value,
        active_at=now,
        actions=rule.actions,
        channels=rule.channels,
        group_key=group,
    )


def _with_value(alert: Alert, rule: AlertRule, value: float) -> Alert:
    return replace(alert, value=value, summary=render_summary(rule, alert.labels, value))


class _Lenient(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render_summary(rule: AlertRule, labels: Mapping[str, str], value: float) -> str:
    """Fill the rule's summary template; unknown fields stay as written, a bad template falls back."""
    template = rule.summary or f"{rule.metric} = {{value:g}}"
    try:
        return string.Formatter().vformat(template, (), _Lenient({**labels, "value": value}))
    except (ValueError, TypeError, IndexError, KeyError):
        return f"{rule.name}: {rule.metric} = {value:g}"
