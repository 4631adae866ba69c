"""Core endpoints for operators: health per core, isolation (with an optional fallback core), restore, and
forced re-queue of a core's held tasks — the same dispatcher messages the monitor's recovery actions use.

Isolation is durable (it survives a restart); each change is an event (`core.isolated`, `core.restored`,
`core.requeued`). Reading needs `task.read`; changing needs `task.retry` (operators).
"""

from __future__ import annotations

import re
from typing import Any

from quart import Response

from actors.dispatcher.messages import (
    CoreHealth,
    CoreHealthView,
    CoreState,
    IsolateCore,
    ListCores,
    RequeueCore,
    RestoreCore,
)
from orch.http.app import current_node, json_response
from orch.http.body import read_json_object
from orch.http.problems import ValidationFailed
from orch.http.routing import Router
from orch.http.task_input import CORE_PATTERN
from orch.http.task_views import iso
from orch.http.waiting import dispatcher_of

__all__ = ["cores"]

cores = Router("cores")

_CORE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "core_id": {"type": "string"},
        "queued": {"type": "integer"},
        "claimed": {"type": "integer"},
        "running": {"type": "integer"},
        "isolated": {"type": "boolean"},
        "fallback": {"type": ["string", "null"]},
        "isolated_since": {"type": ["string", "null"], "format": "date-time"},
        "isolation_reason": {"type": ["string", "null"]},
        "waiting_workers": {"type": "integer"},
        "last_claim_at": {"type": ["string", "null"], "format": "date-time"},
        "last_heartbeat_at": {"type": ["string", "null"], "format": "date-time"},
        "stalest_heartbeat_at": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "the oldest last sign of life among the workers holding its tasks",
        },
    },
}
_STATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "core_id": {"type": "string"},
        "isolated": {"type": "boolean"},
        "fallback": {"type": ["string", "null"]},
        "since": {"type": ["string", "null"], "format": "date-time"},
        "reason": {"type": ["string", "null"]},
        "changed": {"type": "boolean", "description": "false: it already was so"},
    },
}
_REASON = {"reason": {"type": "string", "maxLength": 1024}}


def _core(core_id: str, field: str = "core_id") -> str:
    if re.fullmatch(CORE_PATTERN, core_id) is None:
        raise ValidationFailed(field, f"must match {CORE_PATTERN}")
    return core_id


def _health_json(view: CoreHealthView) -> dict[str, Any]:
    return {
        "core_id": view.core_id,
        "queued": view.queued,
        "claimed": view.claimed,
        "running": view.running,
        "isolated": view.isolated,
        "fallback": view.fallback,
        "isolated_since": iso(view.isolated_since),
        "isolation_reason": view.isolation_reason,
        "waiting_workers": view.waiting_workers,
        "last_claim_at": iso(view.last_claim_at),
        "last_heartbeat_at": iso(view.last_heartbeat_at),
        "stalest_heartbeat_at": iso(view.stalest_heartbeat_at),
    }


def _state_json(state: CoreState) -> dict[str, Any]:
    return {
        "core_id": state.core_id,
        "isolated": state.isolated,
        "fallback": state.fallback,
        "since": iso(state.since),
        "reason": state.reason,
        "changed": state.changed,
    }


@cores.get(
    "/cores",
    summary="Every known core's health",
    response_schema={"type": "object", "properties": {"cores": {"type": "array", "items": _CORE_SCHEMA}}},
    responses={200: "Cores with unfinished tasks, isolated, or with workers seen"},
    auth="task.read",
)
async def list_cores() -> Response:
    """Queued/claimed/running counts, isolation, waiting workers and their last signs of life."""
    views: tuple[CoreHealthView, ...] = await dispatcher_of(current_node()).ask(ListCores)
    return json_response({"cores": [_health_json(v) for v in views]})


@cores.get(
    "/cores/<core_id>",
    summary="One core's health",
    response_schema=_CORE_SCHEMA,
    responses={200: "The core (zeros for a core nobody used)", 422: "Invalid core id"},
    auth="task.read",
)
async def core_health(core_id: str) -> Response:
    """See `GET /cores`."""
    core = _core(core_id)
    view: CoreHealthView = await dispatcher_of(current_node()).ask(lambda r: CoreHealth(core, r))
    return json_response(_health_json(view))


@cores.post(
    "/cores/<core_id>/isolate",
    summary="Take a core out of rotation",
    request_schema={
        "type": "object",
        "properties": {"fallback": {"type": "string", "description": "a core whose workers take its tasks"}}
        | _REASON,
    },
    response_schema=_STATE_SCHEMA,
    responses={200: "Isolated (durable)", 422: "Invalid field"},
    auth="task.retry",
)
async def isolate_core(core_id: str) -> Response:
    """Claims for the core get nothing; its tasks wait, or are claimed by the `fallback` core's workers
    (best rank first across both; the tasks keep their core). Fallbacks are not chained."""
    core = _core(core_id)
    body = await read_json_object(allow_empty=True)
    fallback = body.opt_str("fallback", max_len=200)
    reason = body.opt_str("reason", min_len=1, max_len=1024)
    body.reject_unknown()
    if fallback is not None:
        _core(fallback, "fallback")
    state: CoreState = await dispatcher_of(current_node()).ask(
        lambda r: IsolateCore(core, r, fallback=fallback, reason=reason)
    )
    return json_response(_state_json(state))


@cores.post(
    "/cores/<core_id>/restore",
    summary="Put an isolated core back into rotation",
    request_schema={"type": "object", "properties": _REASON},
    response_schema=_STATE_SCHEMA,
    responses={200: "Restored (or it was not isolated: changed false)", 422: "Invalid field"},
    auth="task.retry",
)
async def restore_core(core_id: str) -> Response:
    """Its waiting claims are served at once."""
    core = _core(core_id)
    body = await read_json_object(allow_empty=True)
    reason = body.opt_str("reason", min_len=1, max_len=1024)
    body.reject_unknown()
    state: CoreState = await dispatcher_of(current_node()).ask(lambda r: RestoreCore(core, r, reason=reason))
    return json_response(_state_json(state))


@cores.post(
    "/cores/<core_id>/requeue",
    summary="Take back the tasks held by a core's workers",
    request_schema={"type": "object", "properties": _REASON},
    response_schema={
        "type": "object",
        "properties": {"core_id": {"type": "string"}, "tasks": {"type": "integer"}},
    },
    responses={200: "How many tasks were taken back", 422: "Invalid field"},
    auth="task.retry",
)
async def requeue_core(core_id: str) -> Response:
    """As if their leases lapsed now: re-queued with the attempt counted (dead without attempts left);
    their workers get 409 stale-lease on their next heartbeat."""
    core = _core(core_id)
    body = await read_json_object(allow_empty=True)
    reason = body.opt_str("reason", min_len=1, max_len=1024)
    body.reject_unknown()
    n: int = await dispatcher_of(current_node()).ask(lambda r: RequeueCore(core, r, reason=reason))
    return json_response({"core_id": core, "tasks": n})
