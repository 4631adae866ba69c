"""The monitor actor: samples every interval, stores history, evaluates rules, notifies and heals.

Each round (every ``interval_s``, or on `SampleNow`): psutil in a worker thread, the node's application
metrics (`SampleSource`), counter rates; the samples go to metrics.db; the rule engine advances; alert
changes are stored, emitted as ``alert.firing`` / ``alert.resolved`` events (`EventSink`) and, unless
silenced, sent to the notifier with ``tell_nowait`` (a full notifier mailbox drops the notification, it
never stalls monitoring); then the `Healer` runs recovery policies, emitting ``recovery.executed``.
Alerts, silences and isolations are persisted, so a restarted monitor neither re-fires nor forgets them.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, assert_never

import trio

from actors.notifier.messages import Notification, NotifierMsg, Notify
from runtime import Actor, ActorError, ActorRef

from .healing import Healer
from .messages import (
    Alert,
    AlertState,
    ExpireSilence,
    GetStatus,
    InvalidQuery,
    ListAlerts,
    ListSeries,
    ListSilences,
    MetricHistory,
    MonitorMsg,
    MonitorStatus,
    RecoveryHistory,
    RecoveryRecord,
    SampleNow,
    SeriesHistory,
    SettingChanged,
    Silence,
    SilenceInfo,
)
from .notices import group_alerts, recovery_notice
from .ports import EventSink, RecoveryPort, SampleSource
from .rates import RateDeriver
from .rules import Change, RuleEngine, Transition
from .series import SeriesKeyError, parse_series
from .settings import MonitorSettings
from .store import MetricsStore
from .system import SystemSampler

log = logging.getLogger(__name__)

SystemSample = Callable[[], Mapping[str, float]]
_CORE_ACTIONS = frozenset({"requeue_core", "isolate_core", "restore_core"})


class MonitorActor(Actor[MonitorMsg]):
    """See the module doc. ``clock`` is wall time (unix seconds), injectable for tests."""

    def __init__(
        self,
        settings: MonitorSettings,
        store: MetricsStore,
        *,
        samples: SampleSource | None = None,
        recovery: RecoveryPort | None = None,
        events: EventSink | None = None,
        notifier: ActorRef[NotifierMsg] | None = None,
        system: SystemSample | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._store = store
        self._samples = samples
        self._events = events
        self._notifier = notifier
        self._system = system
        self._clock = clock
        self._engine = RuleEngine(settings.rules, repeat_interval_s=settings.repeat_interval_s)
        self._rates = RateDeriver()
        self._healer = Healer(settings, recovery, self._audit, self._isolation_changed, self._notify)
        self._silences: list[SilenceInfo] = []
        self._round_lock = trio.Lock()
        self._counters = {"ticks": 0, "sent": 0, "dropped": 0, "sample_errors": 0, "series": 0}
        self._last_tick: tuple[float, float] | None = None

    async def on_start(self) -> None:
        """Reload open alerts, silences and isolations, then start the sampling and maintenance loops."""
        if self._system is None and self._settings.system_metrics:
            sampler = await trio.to_thread.run_sync(SystemSampler, self._settings.disk_paths)
            self._system = sampler.sample
        self._engine.restore(await self._store.open_alerts())
        self._silences = await self._store.silences()
        self._healer.isolated = await self._store.isolated()
        self.spawn(self._sample_loop)
        self.spawn(self._maintenance_loop)

    async def handle(self, message: MonitorMsg) -> None:
        """Queries and commands; the sampling itself runs in the background loop."""
        match message:
            case ListAlerts(reply=reply, state=state, limit=limit):
                reply.send(tuple(await self._store.list_alerts(state, _limit(limit))))
            case Silence(matchers=matchers, duration_s=duration, created_by=who, reply=reply, comment=c):
                reply.send(await self._silence(matchers, duration, who, c))
            case ExpireSilence(silence_id=sid, reply=reply):
                expired = await self._store.expire_silence(sid, self._clock())
                self._silences = await self._store.silences()
                reply.send(expired)
            case ListSilences(reply=reply, include_expired=everything):
                now = self._clock()
                reply.send(tuple(s for s in self._silences if everything or s.ends_at > now))
            case MetricHistory(series=key, since=since, until=until, reply=reply, max_points=n):
                reply.send(await self._history(key, since, until, n))
            case ListSeries(reply=reply, prefix=prefix, limit=limit):
                reply.send(tuple(await self._store.series(prefix, _limit(limit))))
            case RecoveryHistory(reply=reply, target=target, limit=limit):
                reply.send(tuple(await self._store.recoveries(target, _limit(limit))))
            case SettingChanged(key=key, at=at):
                self._healer.setting_changed(key, self._clock() if at is None else at)
            case SampleNow(reply=reply):
                await self._round()
                reply.send(None)
            case GetStatus(reply=reply):
                reply.send(self._status())
            case _:
                assert_never(message)

    # ---- the sampling round -------------------------------------------------------------------------------

    async def _sample_loop(self) -> None:
        interval = self._settings.interval_s
        next_at = trio.current_time() + interval
        while True:
            await trio.sleep_until(next_at)
            await self._round()
            now = trio.current_time()
            next_at += interval
            if next_at <= now:  # fell behind (a slow round): skip missed slots rather than burst
                next_at = now + interval - (now - next_at) % interval

    async def _maintenance_loop(self) -> None:
        s = self._settings
        while True:
            await trio.sleep(s.maintenance_interval_s)
            folded = await self._store.compact(self._clock(), s.raw_retention_s, s.rollup_s, s.retention_s)
            self._silences = await self._store.silences()
            log.debug("metrics compaction folded %d raw points", folded)

    async def _round(self) -> None:
        async with self._round_lock:
            started = trio.current_time()
            now = self._clock()
            values = await self._collect(now)
            self._counters["series"] = len(values)
            await self._store.record(now, values)
            transitions = self._engine.evaluate(now, values)
            await self._store.save_alerts(
                [t.alert for t in transitions if t.change is not Change.DROPPED],
                [t.alert.fingerprint for t in transitions if t.change is Change.DROPPED],
            )
            await self._emit_alert_events(transitions)
            await self._send_notifications(now, transitions)
            self._healer.on_transitions(now, transitions)
            firing = [a for a in self._engine.active() if a.state is AlertState.FIRING and a.actions]
            await self._healer.run(now, firing, values)
            self._counters["ticks"] += 1
            self._last_tick = (now, trio.current_time() - started)

    async def _collect(self, now: float) -> dict[str, float]:
        values: dict[str, object] = {}
        if self._system is not None:
            try:
                values.update(await trio.to_thread.run_sync(self._system))
            except Exception:
                self._counters["sample_errors"] += 1
                log.exception("system sampling failed")
        if self._samples is not None:
            try:
                values.update(self._samples.sample())
            except Exception:
                self._counters["sample_errors"] += 1
                log.exception("application sample source failed")
        clean = self._clean(values)
        clean.update(self._rates.derive(now, clean))
        return clean

    def _clean(self, values: Mapping[str, object]) -> dict[str, float]:
        # A malformed key or value from a source is that source's bug: drop it, never crash the round.
        clean: dict[str, float] = {}
        for key, value in values.items():
            try:
                parse_series(key)
                clean[key] = float(value)  # type: ignore[arg-type]  # checked by the except
            except (SeriesKeyError, TypeError, ValueError):
                self._counters["sample_errors"] += 1
                log.warning("dropping malformed sample %.80r", key)
        return clean

    async def _emit_alert_events(self, transitions: list[Transition]) -> None:
        for t in transitions:
            if t.change in (Change.FIRING, Change.RESOLVED):
                a = t.alert
                data = _alert_data(a) | {"silenced": self._silenced(a, self._clock())}
                await self._emit(f"alert.{t.change.value}", a.fingerprint, a.labels.get("core"), data)

    async def _send_notifications(self, now: float, transitions: list[Transition]) -> None:
        s = self._settings
        due = [a for a in self._engine.due_notifications(now) if not self._silenced(a, now)]
        resolved = [
            t.alert
            for t in transitions
            if t.change is Change.RESOLVED
            and t.alert.last_notified_at is not None
            and not self._silenced(t.alert, now)
        ]
        for notification in group_alerts(due, AlertState.FIRING, now, s.channels):
            self._notify(notification)
        if s.notify_resolved:
            for notification in group_alerts(resolved, AlertState.RESOLVED, now, s.channels):
                self._notify(notification)
        if due:
            self._engine.mark_notified([a.fingerprint for a in due], now)
            notified = {a.fingerprint for a in due}
            await self._store.save_alerts([a for a in self._engine.active() if a.fingerprint in notified], [])

    def _silenced(self, alert: Alert, now: float) -> bool:
        return any(s.mutes(alert.labels, now) for s in self._silences)

    def _notify(self, notification: Notification) -> None:
        if self._notifier is None:
            return
        try:
            self._notifier.tell_nowait(Notify(notification))
            self._counters["sent"] += 1
        except ActorError as exc:  # MailboxFull or ActorStopped: drop, never wait
            self._counters["dropped"] += 1
            log.warning("notification %s dropped: %s", notification.id, type(exc).__name__)

    async def _emit(self, type_: str, subject: str, core_id: str | None, data: dict[str, Any]) -> None:
        if self._events is None:
            return
        try:
            await self._events.emit(type_, subject=subject, core_id=core_id, data=data)
        except Exception:
            # The event store being down must not stop monitoring (which is what would report it).
            log.exception("could not record %s event", type_)

    # ---- recovery callbacks -------------------------------------------------------------------------------

    async def _audit(self, record: RecoveryRecord, alert: Alert | None) -> None:
        stored = await self._store.add_recovery(record)
        core = stored.target if stored.action in _CORE_ACTIONS else None
        data = {
            "id": stored.id,
            "policy": stored.policy,
            "action": stored.action,
            "target": stored.target,
            "outcome": stored.outcome,
            "attempt": stored.attempt,
            "detail": stored.detail,
            "alert": stored.alert,
            "rule": None if alert is None else alert.rule,
        }
        await self._emit("recovery.executed", stored.target, core, data)
        channels = self._settings.channels if alert is None or alert.channels is None else alert.channels
        self._notify(recovery_notice(stored, channels, {"rule": data["rule"]} if alert else None))

    async def _isolation_changed(self, core: str, since: float | None) -> None:
        await self._store.set_isolated(core, since, {})

    # ---- queries ------------------------------------------------------------------------------------------

    async def _silence(
        self, matchers: Mapping[str, str], duration: float, who: str, comment: str
    ) -> SilenceInfo:
        if not matchers or not 0 < duration <= self._settings.retention_s:
            raise InvalidQuery("a silence needs at least one matcher and a duration within the retention")
        now = self._clock()
        silence = SilenceInfo(
            f"sil_{uuid.uuid4().hex[:16]}", dict(matchers), now, now + duration, who, comment
        )
        await self._store.add_silence(silence)
        self._silences = await self._store.silences()
        return silence

    async def _history(self, key: str, since: float, until: float, max_points: int) -> SeriesHistory:
        if not since < until or not 1 <= max_points <= 10_000:
            raise InvalidQuery("need since < until and 1 <= max_points <= 10000")
        points, step = await self._store.history(key, since, until, max_points)
        return SeriesHistory(key, tuple(points), step)

    def _status(self) -> MonitorStatus:
        active = self._engine.active()
        c = self._counters
        return MonitorStatus(
            ticks=c["ticks"],
            last_tick_at=None if self._last_tick is None else self._last_tick[0],
            last_tick_duration_s=None if self._last_tick is None else self._last_tick[1],
            series=c["series"],
            alerts_pending=sum(a.state is AlertState.PENDING for a in active),
            alerts_firing=sum(a.state is AlertState.FIRING for a in active),
            isolated_cores=tuple(sorted(self._healer.isolated)),
            notifications_sent=c["sent"],
            notifications_dropped=c["dropped"],
            sample_errors=c["sample_errors"],
        )


def _limit(limit: int) -> int:
    if not 1 <= limit <= 10_000:
        raise InvalidQuery("limit must be between 1 and 10000")
    return limit


def _alert_data(a: Alert) -> dict[str, Any]:
    return {
        "rule": a.rule,
        "series": a.series,
        "labels": dict(a.labels),
        "severity": a.severity.value,
        "summary": a.summary,
        "value": a.value,
        "active_at": a.active_at,
        "fired_at": a.fired_at,
        "resolved_at": a.resolved_at,
    }
