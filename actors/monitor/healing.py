"""Self-healing: runs the recovery policies of firing alerts through the node's `RecoveryPort`.

Every evaluation round, each firing alert's policies are considered for their targets (the actor or core
named by the alert's labels; for rollback, the settings changed shortly before the alert became active).
A `RecoveryGovernor` per policy decides (cooldown, window budget, backoff, escalation). Isolation, rollback
and scale-up act at most once per alert episode; an isolated core is restored once its alert has stayed
resolved for ``restore_after_s`` (a readiness probe). Every attempt, restore and escalation is audited
through the ``audit`` callback with its outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import trio

from actors.notifier.messages import Notification, NotificationKind, Severity

from .messages import Alert, RecoveryRecord
from .notices import new_id
from .ports import RecoveryPort
from .recovery import RecoveryGovernor
from .rules import Change, Transition
from .settings import ActionKind, MonitorSettings, RecoveryPolicy

log = logging.getLogger(__name__)

Audit = Callable[[RecoveryRecord, Alert | None], Awaitable[None]]
_ONCE_PER_EPISODE = frozenset({ActionKind.ISOLATE_CORE, ActionKind.ROLLBACK, ActionKind.SCALE_UP})


class Healer:
    """Recovery state and execution for the monitor (see module doc)."""

    def __init__(
        self,
        settings: MonitorSettings,
        port: RecoveryPort | None,
        audit: Audit,
        on_isolation: Callable[[str, float | None], Awaitable[None]],
        notify: Callable[[Notification], None],
    ) -> None:
        self._settings = settings
        self._port = port
        self._audit = audit
        self._on_isolation = on_isolation
        self._notify = notify
        self._governors = {p.name: RecoveryGovernor(p) for p in settings.policies}
        self.isolated: dict[str, float] = {}
        self._restores: dict[str, tuple[float, RecoveryPolicy]] = {}
        self._changes: dict[str, float] = {}
        self._done: dict[str, set[tuple[str, str]]] = {}

    def setting_changed(self, key: str, now: float) -> None:
        """Remember a runtime setting change (a rollback suspect for alerts that start soon after)."""
        self._changes[key] = now

    def on_transitions(self, now: float, transitions: list[Transition]) -> None:
        """Feed alert state changes to the governors' health clocks and the restore probes."""
        for t in transitions:
            if t.change not in (Change.FIRING, Change.RESOLVED):
                continue
            for policy, target in self._targets(t.alert):
                governor = self._governors[policy.name]
                if t.change is Change.FIRING:
                    governor.note_unhealthy(now, target)
                    if policy.kind is ActionKind.ISOLATE_CORE:
                        self._restores.pop(target, None)  # unhealthy again: the probe starts over
                else:
                    governor.note_healthy(now, target)
                    if policy.kind is ActionKind.ISOLATE_CORE and target in self.isolated:
                        self._restores[target] = (now, policy)
            if t.change is Change.RESOLVED:
                self._done.pop(t.alert.fingerprint, None)

    async def run(self, now: float, firing: list[Alert], values: Mapping[str, float]) -> None:
        """Act on the firing alerts' policies, then restore cores that proved healthy."""
        for alert in firing:
            for policy, target in self._targets(alert):
                await self._maybe_act(now, policy, target, alert, values)
        for core, (since, policy) in list(self._restores.items()):
            if now - since >= policy.restore_after_s:
                await self._restore(now, core, policy)

    def _targets(self, alert: Alert) -> list[tuple[RecoveryPolicy, str]]:
        out = []
        for name in alert.actions:
            policy = self._settings.policy(name)
            if policy.kind is ActionKind.ROLLBACK:
                out += [(policy, key) for key in self._suspects(policy, alert)]
            elif policy.kind is ActionKind.SCALE_UP:
                out.append((policy, "capacity"))
            elif policy.target is not None and policy.target in alert.labels:
                out.append((policy, alert.labels[policy.target]))
        return out

    def _suspects(self, policy: RecoveryPolicy, alert: Alert) -> list[str]:
        return sorted(
            key
            for key, at in self._changes.items()
            if at <= alert.active_at and alert.active_at - at <= policy.rollback_window_s
        )

    async def _maybe_act(
        self, now: float, policy: RecoveryPolicy, target: str, alert: Alert, values: Mapping[str, float]
    ) -> None:
        done = self._done.setdefault(alert.fingerprint, set())
        if policy.kind in _ONCE_PER_EPISODE and (policy.name, target) in done:
            return
        if policy.kind is ActionKind.ISOLATE_CORE and target in self.isolated:
            return
        governor = self._governors[policy.name]
        decision = governor.decide(now, target)
        if decision.escalate:
            detail = f"gave up after {decision.attempt} attempt(s); needs an operator"
            record = _record(now, policy, target, alert, "escalated", decision.attempt, detail)
            await self._audit(record, alert)
            return
        if not decision.allowed:
            return
        governor.record(now, target)
        done.add((policy.name, target))
        outcome, detail = await self._execute(now, policy, target, values)
        await self._audit(_record(now, policy, target, alert, outcome, decision.attempt, detail), alert)

    async def _execute(
        self, now: float, policy: RecoveryPolicy, target: str, values: Mapping[str, float]
    ) -> tuple[str, str]:
        if self._port is None and policy.kind is not ActionKind.SCALE_UP:
            return "skipped", "no recovery port configured"
        with trio.move_on_after(self._settings.action_timeout_s):
            try:
                return await self._perform(now, policy, target, values)
            except Exception as exc:  # the outcome is the audit record; trio.Cancelled is not an Exception
                log.warning("recovery %s on %s failed: %s", policy.name, target, type(exc).__name__)
                return "failed", f"{type(exc).__name__}: {exc}"[:300]
        return "failed", f"timed out after {self._settings.action_timeout_s:g}s"

    async def _perform(
        self, now: float, policy: RecoveryPolicy, target: str, values: Mapping[str, float]
    ) -> tuple[str, str]:
        port = self._port
        match policy.kind:
            case ActionKind.RESTART_ACTOR:
                assert port is not None
                await port.restart_actor(target)
                return "ok", "restarted through the supervisor"
            case ActionKind.REQUEUE_CORE:
                assert port is not None
                count = await port.requeue_core(target)
                return "ok", f"re-queued {count} task(s)"
            case ActionKind.ISOLATE_CORE:
                assert port is not None
                await port.isolate_core(target, policy.fallback_core)
                self.isolated[target] = now
                await self._on_isolation(target, now)
                return "ok", f"isolated; work goes to {policy.fallback_core or 'nowhere (waits)'}"
            case ActionKind.ROLLBACK:
                assert port is not None
                description = await port.rollback_setting(target)
                self._changes.pop(target, None)
                return "ok", description
            case ActionKind.SCALE_UP:
                return await self._scale_up(now, policy, values)

    async def _scale_up(
        self, now: float, policy: RecoveryPolicy, values: Mapping[str, float]
    ) -> tuple[str, str]:
        current = int(values.get(policy.capacity_metric, 0.0))
        desired = min(current + policy.scale_step, policy.scale_max)
        if desired <= current:
            return "skipped", f"already at the maximum capacity {policy.scale_max}"
        if policy.dry_run:
            return "dry_run", f"would request capacity {desired} (now {current})"
        if policy.hook_command:
            await trio.run_process(
                [*policy.hook_command, str(desired)], capture_stdout=True, capture_stderr=True
            )
        if policy.hook_channel is not None:
            # Delivered (signed, retried) by the notifier to that webhook channel only.
            details = {"desired_capacity": desired, "current_capacity": current, "policy": policy.name}
            title = f"scale up to {desired}"
            kind, severity = NotificationKind.SCALE_UP, Severity.WARNING
            self._notify(
                Notification(
                    new_id(), kind, title, severity, now, details=details, channels=(policy.hook_channel,)
                )
            )
        return "ok", f"requested capacity {desired} (now {current})"

    async def _restore(self, now: float, core: str, policy: RecoveryPolicy) -> None:
        del self._restores[core]
        outcome, detail = "ok", "healthy again; back in rotation"
        try:
            if self._port is not None:
                with trio.fail_after(self._settings.action_timeout_s):
                    await self._port.restore_core(core)
        except Exception as exc:
            outcome, detail = "failed", f"{type(exc).__name__}: {exc}"[:300]
            self._restores[core] = (now, policy)  # probe again after another restore_after_s
        if outcome == "ok":
            self.isolated.pop(core, None)
            await self._on_isolation(core, None)
        record = RecoveryRecord(0, now, policy.name, "restore_core", core, None, outcome, 1, detail)
        await self._audit(record, None)


def _record(
    now: float, policy: RecoveryPolicy, target: str, alert: Alert, outcome: str, attempt: int, detail: str
) -> RecoveryRecord:
    action = "escalate" if outcome == "escalated" else policy.kind.value
    return RecoveryRecord(0, now, policy.name, action, target, alert.fingerprint, outcome, attempt, detail)
