"""Monitoring endpoints: alerts, silences, metric history, recovery history, runtime rate limits.

Alerts and recoveries come from the monitor actor (metrics.db); `PUT /settings/rate-limits` changes the
security actor's policies through the node's `RuntimeSettings`, which reports the change to the monitor so
a rollback policy can revert it if an alert starts right after.
"""

from __future__ import annotations

import math
import time
from typing import Any

from quart import Response

from actors.monitor.messages import (
    Alert,
    AlertState,
    ExpireSilence,
    ListAlerts,
    ListSeries,
    ListSilences,
    MetricHistory,
    RecoveryHistory,
    RecoveryRecord,
    SeriesHistory,
    Silence,
    SilenceInfo,
)
from orch.http.app import current_node, json_response
from orch.http.body import read_json_object
from orch.http.caller import caller_name
from orch.http.problems import NotFound, ServiceUnavailable, ValidationFailed
from orch.http.query import query_int, query_number, query_str
from orch.http.routing import QueryParam, Router
from orch.http.task_views import iso
from orch.monitoring import RATE_LIMITS, Monitoring, policies_from_json
from orch.runtime_settings import SettingVersion

__all__ = ["monitor_routes"]

monitor_routes = Router("monitoring")

_OBJECT: dict[str, Any] = {"type": "object"}
_INT: dict[str, Any] = {"type": "integer"}


def _list_of(key: str) -> dict[str, Any]:
    return {"type": "object", "properties": {key: {"type": "array", "items": _OBJECT}}}


MAX_SILENCE = 30 * 86_400.0


def _monitoring() -> Monitoring:
    m = current_node().monitoring
    if m is None or m.monitor is None:
        raise ServiceUnavailable("Monitoring is disabled on this node.")
    return m


def _alert_json(a: Alert) -> dict[str, Any]:
    return {
        "fingerprint": a.fingerprint,
        "rule": a.rule,
        "series": a.series,
        "labels": dict(a.labels),
        "state": a.state.value,
        "severity": a.severity.value,
        "summary": a.summary,
        "value": a.value if math.isfinite(a.value) else None,
        "active_at": iso(a.active_at),
        "fired_at": iso(a.fired_at),
        "resolved_at": iso(a.resolved_at),
        "last_notified_at": iso(a.last_notified_at),
        "actions": list(a.actions),
    }


def _silence_json(s: SilenceInfo) -> dict[str, Any]:
    return {
        "id": s.id,
        "matchers": dict(s.matchers),
        "starts_at": iso(s.starts_at),
        "ends_at": iso(s.ends_at),
        "created_by": s.created_by,
        "comment": s.comment,
        "active": s.starts_at <= time.time() < s.ends_at,
    }


def _recovery_json(r: RecoveryRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "at": iso(r.ts),
        "policy": r.policy,
        "action": r.action,
        "target": r.target,
        "alert": r.alert,
        "outcome": r.outcome,
        "attempt": r.attempt,
        "detail": r.detail,
    }


def _version_json(v: SettingVersion) -> dict[str, Any]:
    return {
        "version": v.version,
        "value": v.value,
        "at": iso(v.at),
        "by": v.by,
        "reason": v.reason,
        "rolled_back": v.rolled_back,
    }


# --------------------------------------------------------------------------------------------------- alerts
@monitor_routes.get(
    "/alerts",
    summary="Alerts: firing, pending and recently resolved",
    response_schema=_list_of("alerts"),
    query=[
        QueryParam("state", "pending, firing or resolved (default: all three)", {"enum": list(AlertState)}),
        QueryParam("limit", "at most this many (1..1000)", {"type": "integer"}),
    ],
    auth="alert.read",
)
async def list_alerts() -> Response:
    """Newest first."""
    m = _monitoring()
    text = query_str("state", max_len=16)
    try:
        state = AlertState(text) if text is not None else None
    except ValueError:
        raise ValidationFailed("state", "must be one of pending, firing, resolved") from None
    limit = query_int("limit", default=100, min=1, max=1000)
    assert m.monitor is not None
    alerts: tuple[Alert, ...] = await m.monitor.ask(lambda r: ListAlerts(r, state, limit))
    return json_response({"alerts": [_alert_json(a) for a in alerts]})


@monitor_routes.post(
    "/alerts/silences",
    summary="Silence notifications of matching alerts for a while",
    request_schema={
        "type": "object",
        "required": ["matchers", "duration"],
        "properties": {
            "matchers": {"type": "object", "additionalProperties": {"type": "string"}},
            "duration": {"type": "number", "description": "seconds"},
            "comment": {"type": "string"},
        },
    },
    response_schema=_OBJECT,
    responses={201: "Silence created", 422: "Invalid field"},
    auth="alert.ack",
)
async def create_silence() -> Response:
    """Alerts whose labels include every matcher (e.g. `alertname`) still fire and are recorded, but send
    no notifications until the silence ends."""
    m = _monitoring()
    body = await read_json_object()
    matchers = body.opt_str_map("matchers", max_items=16, max_len=256)
    if not matchers:
        raise ValidationFailed("matchers", "needs at least one label: value")
    duration = body.req_number("duration", min=1.0, max=MAX_SILENCE)
    comment = body.opt_str("comment", max_len=1000) or ""
    body.reject_unknown()
    who = caller_name() or "anonymous"
    assert m.monitor is not None
    silence: SilenceInfo = await m.monitor.ask(lambda r: Silence(matchers, duration, who, r, comment))
    return json_response(_silence_json(silence), status=201)


@monitor_routes.get(
    "/alerts/silences",
    summary="Silences",
    response_schema=_list_of("silences"),
    query=[QueryParam("include_expired", "true to list ended silences too", {"type": "boolean"})],
    auth="alert.read",
)
async def list_silences() -> Response:
    """Active silences (and ended ones with `include_expired=true`)."""
    m = _monitoring()
    everything = (query_str("include_expired", max_len=5) or "false") == "true"
    assert m.monitor is not None
    silences: tuple[SilenceInfo, ...] = await m.monitor.ask(lambda r: ListSilences(r, everything))
    return json_response({"silences": [_silence_json(s) for s in silences]})


@monitor_routes.delete(
    "/alerts/silences/<silence_id>",
    summary="End a silence now",
    responses={204: "Ended", 404: "No active silence with that id"},
    auth="alert.ack",
)
async def expire_silence(silence_id: str) -> Response:
    """Notifications of matching alerts resume with the next round."""
    m = _monitoring()
    assert m.monitor is not None
    expired: bool = await m.monitor.ask(lambda r: ExpireSilence(silence_id, r))
    if not expired:
        raise NotFound(f"No active silence {silence_id!r}.")
    return Response(b"", status=204)


# -------------------------------------------------------------------------------------------------- metrics
@monitor_routes.get(
    "/metrics/history",
    summary="History of one metric series",
    response_schema={
        "type": "object",
        "properties": {
            "series": {"type": "string"},
            "step": {"type": ["number", "null"]},
            "points": {"type": "array", "items": {"type": "array"}},
        },
    },
    query=[
        QueryParam("series", 'a key like queue_depth{priority="5"}', required=True),
        QueryParam("since", "unix seconds (default: an hour ago)", {"type": "number"}),
        QueryParam("until", "unix seconds (default: now)", {"type": "number"}),
        QueryParam(
            "step", "seconds per point (averaged buckets); default: raw, at most 500", {"type": "number"}
        ),
    ],
    auth="metrics.read",
)
async def metric_history() -> Response:
    """Points `[unix_seconds, value]`, oldest first."""
    m = _monitoring()
    series = query_str("series", max_len=512)
    if series is None:
        raise ValidationFailed("series", "is required")
    now = time.time()
    since = query_number("since", default=now - 3600.0, min=0.0, max=now + 86_400.0)
    until = query_number("until", default=now, min=0.0, max=now + 86_400.0)
    if since >= until:
        raise ValidationFailed("since", "must be before until")
    step = query_number("step", default=0.0, min=0.0, max=86_400.0 * 30)
    points = 500 if step == 0 else math.ceil((until - since) / step)
    if not 1 <= points <= 10_000:
        raise ValidationFailed("step", "gives more than 10000 points for this range; use a larger step")
    assert m.monitor is not None
    history: SeriesHistory = await m.monitor.ask(lambda r: MetricHistory(series, since, until, r, points))
    return json_response(
        {"series": history.series, "step": history.step_s, "points": [list(p) for p in history.points]}
    )


@monitor_routes.get(
    "/metrics/series",
    summary="Known metric series",
    response_schema={"type": "object", "properties": {"series": {"type": "array"}}},
    query=[
        QueryParam("prefix", "only keys starting with this"),
        QueryParam("limit", schema={"type": "integer"}),
    ],
    auth="metrics.read",
)
async def metric_series() -> Response:
    """Series keys the monitor has stored."""
    m = _monitoring()
    prefix = query_str("prefix", max_len=256) or ""
    limit = query_int("limit", default=1000, min=1, max=10_000)
    assert m.monitor is not None
    keys: tuple[str, ...] = await m.monitor.ask(lambda r: ListSeries(r, prefix, limit))
    return json_response({"series": list(keys)})


@monitor_routes.get(
    "/recoveries",
    summary="Recovery actions and their outcomes",
    response_schema=_list_of("recoveries"),
    query=[
        QueryParam("target", "one actor, core or setting"),
        QueryParam("limit", schema={"type": "integer"}),
    ],
    auth="alert.read",
)
async def recoveries() -> Response:
    """Restarts, re-queues, isolations, rollbacks, scale-ups and escalations, newest first."""
    m = _monitoring()
    target = query_str("target", max_len=256)
    limit = query_int("limit", default=100, min=1, max=1000)
    assert m.monitor is not None
    records: tuple[RecoveryRecord, ...] = await m.monitor.ask(lambda r: RecoveryHistory(r, target, limit))
    return json_response({"recoveries": [_recovery_json(r) for r in records]})


# -------------------------------------------------------------------------------------- runtime settings
_LIMITS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "limits": {"type": "object", "additionalProperties": {"type": "string"}},
        "version": {"type": "integer"},
        "history": {"type": "array", "items": _OBJECT},
    },
}


def _limits_body(m: Monitoring) -> dict[str, Any]:
    history = m.runtime_settings.history(RATE_LIMITS)
    return {
        "limits": history[-1].value,
        "version": history[-1].version,
        "history": [_version_json(v) for v in reversed(history)],
    }


def _has_rate_limits(m: Monitoring) -> None:
    if RATE_LIMITS not in m.runtime_settings.keys():  # noqa: SIM118 (a registry, not a dict)
        raise ServiceUnavailable("Rate limits are not a runtime setting on this node.")


@monitor_routes.get(
    "/settings/rate-limits",
    summary="Rate limits in force, with their version history",
    response_schema=_LIMITS_SCHEMA,
    auth="settings.manage",
)
async def get_rate_limits() -> Response:
    """Per route class `LIMIT/WINDOW_SECONDS[/BURST]`; versions newest first."""
    m = _monitoring()
    _has_rate_limits(m)
    return json_response(_limits_body(m))


@monitor_routes.put(
    "/settings/rate-limits",
    summary="Change rate limits at runtime",
    request_schema={
        "type": "object",
        "required": ["limits"],
        "properties": {
            "limits": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": 'route class -> "LIMIT/WINDOW_SECONDS[/BURST]"; classes not named keep theirs',
            },
        },
    },
    response_schema=_LIMITS_SCHEMA,
    responses={200: "Applied (a new version)", 422: "Invalid field"},
    auth="settings.manage",
)
async def put_rate_limits() -> Response:
    """Applied at once; recorded as a new version the monitor may roll back if an alert follows."""
    m = _monitoring()
    _has_rate_limits(m)
    body = await read_json_object()
    given = body.opt_str_map("limits", max_items=64, max_len=64)
    if not given:
        raise ValidationFailed("limits", "needs at least one CLASS: LIMIT/WINDOW entry")
    body.reject_unknown()
    merged = {**m.runtime_settings.current(RATE_LIMITS).value, **given}
    try:
        policies_from_json(merged)
    except ValueError as exc:
        raise ValidationFailed("limits", str(exc)) from None
    await m.runtime_settings.change(RATE_LIMITS, merged, by=caller_name() or "anonymous")
    return json_response(_limits_body(m))
