"""The worker protocol over HTTP: long-poll claim, heartbeat, report.

    POST /cores/WORK_AI_01/claim   {"worker_id": "w1", "lease": 30, "wait": 30}
        -> 200 {"task": {...}, "lease_token": "...", "lease_expires_at": "..."}  or 204 (nothing came)
    POST /tasks/<id>/heartbeat     {"lease_token": "...", "progress": {...}}
        -> 200 {"cancel_requested": false, "lease_expires_at": "..."}          (409: the lease is gone)
    POST /tasks/<id>/report        {"lease_token": "...", "status": "succeeded", "result": {...}}
    POST /tasks/<id>/release       {"lease_token": "...", "reason": "worker shutting down"}
        -> 200 the task, queued again without spending an attempt                (409: the lease is gone)

Batches, for workers that prefetch (one round trip for many tasks; see `orch.http.worker_items`):

    POST /cores/WORK_AI_01/claims  {"worker_id": "w1", "lease": 30, "wait": 30, "max": 10}
        -> 200 {"claims": [{"task": {...}, "lease_token": ..., "lease_expires_at": ...}, ...]}  or 204
    POST /tasks/heartbeats         {"heartbeats": [{"task_id": ..., "lease_token": ...}, ...]}
    POST /tasks/reports            {"reports": [{"task_id": ..., "lease_token": ..., "status": ...}, ...]}
        -> 200 {"results": [{"ok": true, ...} | {"ok": false, "error": {problem}}, ...]}   (item order)

A claim whose client disconnects (or whose `wait` runs out) leaves nothing claimed: the dispatcher gives
the task back if it was handed out in the same instant. The wait also ends when the node starts draining.
"""

from __future__ import annotations

import re

from quart import Response, request

from actors.dispatcher.messages import (
    Claim,
    ClaimedTask,
    ClaimMany,
    Heartbeat,
    HeartbeatAck,
    Release,
    TaskView,
)
from orch.http.app import current_node, json_response
from orch.http.body import read_json_object
from orch.http.caller import caller_name
from orch.http.problems import ValidationFailed
from orch.http.routes_tasks import apply_status_change
from orch.http.routing import Router
from orch.http.task_input import CORE_PATTERN, REPORT_SCHEMA, read_status_change
from orch.http.task_views import TASK_SCHEMA, claim_json, heartbeat_json, task_json
from orch.http.waiting import dispatcher_of, within
from orch.http.worker_items import (
    DEFAULT_CLAIM_MAX,
    MAX_WORKER_BATCH,
    heartbeat_many,
    item_results_schema,
    plain_heartbeat,
    plain_report,
    read_heartbeat_item,
    read_items,
    read_report_item,
    report_many,
)

__all__ = ["DEFAULT_CLAIM_WAIT", "MAX_CLAIM_WAIT", "workers"]

workers = Router("workers")

DEFAULT_CLAIM_WAIT = 30.0
MAX_CLAIM_WAIT = 60.0
MIN_CLAIM_WAIT = 0.05  # wait=0 means "only if one is ready": give the dispatcher one round trip
MAX_LEASE = 86_400.0

_CLAIM_SCHEMA = {
    "type": "object",
    "properties": {
        "worker_id": {"type": "string", "maxLength": 200, "description": "default: the caller's name"},
        "lease": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_LEASE, "default": 30},
        "wait": {"type": "number", "minimum": 0, "maximum": MAX_CLAIM_WAIT, "default": DEFAULT_CLAIM_WAIT},
    },
}
_CLAIMS_SCHEMA = {
    "type": "object",
    "properties": {
        **_CLAIM_SCHEMA["properties"],  # type: ignore[dict-item]
        "max": {"type": "integer", "minimum": 1, "maximum": MAX_WORKER_BATCH, "default": DEFAULT_CLAIM_MAX},
    },
}
_CLAIM_ANSWER = {
    "type": "object",
    "properties": {
        "task": TASK_SCHEMA,
        "lease_token": {"type": "string"},
        "lease_expires_at": {"type": "string", "format": "date-time"},
    },
}
_HEARTBEAT_SCHEMA = {
    "type": "object",
    "properties": {
        "lease_token": {"type": "string"},
        "progress": {"type": "object"},
        "lease": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_LEASE},
    },
    "required": ["lease_token"],
}
_HEARTBEAT_ANSWER = {
    "task_id": {"type": "string"},
    "lease_expires_at": {"type": "string", "format": "date-time"},
    "cancel_requested": {"type": "boolean"},
}


@workers.post(
    "/cores/<core_id>/claim",
    summary="Claim the next task of a core (long-poll)",
    request_schema=_CLAIM_SCHEMA,
    response_schema=_CLAIM_ANSWER,
    responses={200: "A task, under a lease", 204: "No task within `wait` seconds", 422: "Invalid field"},
    auth="worker.claim",
)
async def claim(core_id: str) -> Response:
    """Wait up to `wait` seconds (default 30, at most 60) for a task; 204 when none came."""
    if re.fullmatch(CORE_PATTERN, core_id) is None:
        raise ValidationFailed("core_id", f"must match {CORE_PATTERN}")
    body = await read_json_object(allow_empty=True)
    worker_id = body.opt_str("worker_id", aliases=("workerId",), min_len=1, max_len=200)
    lease = body.opt_number("lease", default=30.0, min=0.001, max=MAX_LEASE) or 30.0
    wait = body.opt_number("wait", default=DEFAULT_CLAIM_WAIT, min=0.0, max=MAX_CLAIM_WAIT)
    body.reject_unknown()
    worker = worker_id or caller_name() or "anonymous"
    node = current_node()
    ref = dispatcher_of(node)

    async def take() -> ClaimedTask:
        return await ref.ask(lambda reply: Claim(core_id, worker, reply, lease=lease))

    claimed = await within(node, max(wait or 0.0, MIN_CLAIM_WAIT), take)
    response = Response("", status=204) if claimed is None else json_response(claim_json(claimed))
    response.timeout = None
    return response


@workers.post(
    "/cores/<core_id>/claims",
    summary="Claim up to `max` tasks of a core at once (long-poll; a worker's prefetch)",
    request_schema=_CLAIMS_SCHEMA,
    response_schema={
        "type": "object",
        "properties": {"claims": {"type": "array", "items": _CLAIM_ANSWER, "minItems": 1}},
    },
    responses={
        200: "1..max tasks, best rank first, each under its own lease",
        204: "No task within `wait` seconds",
        422: "Invalid field",
    },
    auth="worker.claim",
)
async def claim_many(core_id: str) -> Response:
    """As the claim route, but answers as soon as at least one task is there, with up to `max` (default
    10, at most 1000) tasks; each has its own lease token for its heartbeats and report."""
    if re.fullmatch(CORE_PATTERN, core_id) is None:
        raise ValidationFailed("core_id", f"must match {CORE_PATTERN}")
    body = await read_json_object(allow_empty=True)
    worker_id = body.opt_str("worker_id", aliases=("workerId",), min_len=1, max_len=200)
    lease = body.opt_number("lease", default=30.0, min=0.001, max=MAX_LEASE) or 30.0
    wait = body.opt_number("wait", default=DEFAULT_CLAIM_WAIT, min=0.0, max=MAX_CLAIM_WAIT)
    most = body.opt_int("max", default=DEFAULT_CLAIM_MAX, min=1, max=MAX_WORKER_BATCH) or DEFAULT_CLAIM_MAX
    body.reject_unknown()
    worker = worker_id or caller_name() or "anonymous"
    node = current_node()
    ref = dispatcher_of(node)

    async def take() -> tuple[ClaimedTask, ...]:
        return await ref.ask(lambda reply: ClaimMany(core_id, worker, reply, max=most, lease=lease))

    claimed = await within(node, max(wait or 0.0, MIN_CLAIM_WAIT), take)
    if not claimed:
        response = Response("", status=204)
    else:
        response = json_response({"claims": [claim_json(c) for c in claimed]})
    response.timeout = None
    return response


@workers.post(
    "/tasks/<task_id>/heartbeat",
    summary="Extend a lease (and learn whether to stop)",
    request_schema=_HEARTBEAT_SCHEMA,
    response_schema={"type": "object", "properties": _HEARTBEAT_ANSWER},
    responses={
        200: "Lease extended; `cancel_requested: true` means stop and report cancelled",
        404: "Unknown task",
        409: "The lease is stale (lapsed, timed out, or the task was taken away)",
        422: "Invalid field",
    },
    auth="worker.heartbeat",
)
async def heartbeat(task_id: str) -> Response:
    """Extend the lease by `lease` seconds (default: the claim's) and optionally record progress."""
    body = await read_json_object()
    token = body.req_str("lease_token", aliases=("leaseToken",), max_len=256)
    progress_obj = body.opt_obj("progress")
    lease = body.opt_number("lease", min=0.001, max=MAX_LEASE)
    body.reject_unknown()
    progress = dict(progress_obj.data) if progress_obj is not None else None
    ack: HeartbeatAck = await dispatcher_of(current_node()).ask(
        lambda reply: Heartbeat(task_id, token, reply, progress=progress, lease=lease)
    )
    return json_response(heartbeat_json(ack))


@workers.post(
    "/tasks/heartbeats",
    summary="Heartbeat many held tasks at once (per-item results)",
    request_schema={
        "type": "object",
        "properties": {
            "heartbeats": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_WORKER_BATCH,
                "items": {
                    "type": "object",
                    "properties": {"task_id": {"type": "string"}, **_HEARTBEAT_SCHEMA["properties"]},  # type: ignore[dict-item]
                    "required": ["task_id", "lease_token"],
                },
            }
        },
        "required": ["heartbeats"],
    },
    response_schema=item_results_schema(
        {
            "type": "object",
            "properties": {"ok": {"const": True}, **_HEARTBEAT_ANSWER},
        }
    ),
    responses={
        200: "One result per item, in order: the extended lease, or the item's problem (404, 409, 422)",
        422: "Invalid body (not a non-empty array of at most 1000 items)",
    },
    auth="worker.heartbeat",
)
async def heartbeats() -> Response:
    """Each item is a heartbeat as `POST /tasks/{id}/heartbeat` takes it, plus `task_id`; each is checked
    and applied on its own (a stale lease or a bad field fails only its item), all answered after one
    durable write."""
    body = await read_json_object()
    items = body.opt_list("heartbeats", max_items=MAX_WORKER_BATCH)
    body.reject_unknown()
    parsed = read_items(
        items,
        "heartbeats",
        lambda obj: read_heartbeat_item(obj, min_lease=0.001, max_lease=MAX_LEASE),
        plain_heartbeat,
    )
    return json_response(await heartbeat_many(dispatcher_of(current_node()), parsed, request.path))


@workers.post(
    "/tasks/reports",
    summary="Report many held tasks at once (per-item results)",
    request_schema={
        "type": "object",
        "properties": {
            "reports": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_WORKER_BATCH,
                "items": {
                    "type": "object",
                    "properties": {"task_id": {"type": "string"}, **REPORT_SCHEMA["properties"]},
                    "required": ["task_id", "lease_token", "status"],
                },
            }
        },
        "required": ["reports"],
    },
    response_schema=item_results_schema(
        {"type": "object", "properties": {"ok": {"const": True}, "task": TASK_SCHEMA}}
    ),
    responses={
        200: "One result per item, in order: the task as it is now, or the item's problem (404, 409, 422)",
        422: "Invalid body (not a non-empty array of at most 1000 items)",
    },
    auth="worker.report",
)
async def reports() -> Response:
    """Each item is a report as `POST /tasks/{id}/report` takes it, plus `task_id`; each is checked and
    applied on its own (a stale lease fails only its item; a repeat of a final report answers the task
    unchanged), all answered after one durable write."""
    body = await read_json_object()
    items = body.opt_list("reports", max_items=MAX_WORKER_BATCH)
    body.reject_unknown()
    parsed = read_items(items, "reports", read_report_item, plain_report)
    return json_response(await report_many(dispatcher_of(current_node()), parsed, request.path))


@workers.post(
    "/tasks/<task_id>/report",
    summary="Report a held task's status (worker)",
    request_schema=REPORT_SCHEMA,
    response_schema=TASK_SCHEMA,
    responses={
        200: "Applied (durable); a repeat of the final report answers the same",
        404: "Unknown task",
        409: "Stale lease or illegal transition",
        422: "Invalid field",
    },
    auth="worker.report",
)
async def report(task_id: str) -> Response:
    """Like `PUT /jobs/{id}/status` with a `lease_token`, for workers (the token is required here)."""
    change = read_status_change(await read_json_object(), require_lease=True)
    return json_response(task_json(await apply_status_change(task_id, change)))


@workers.post(
    "/tasks/<task_id>/release",
    summary="Hand a held task back (worker)",
    request_schema={
        "type": "object",
        "properties": {
            "lease_token": {"type": "string", "description": "alias: leaseToken"},
            "reason": {"type": "string", "maxLength": 1024},
        },
        "required": ["lease_token"],
        "additionalProperties": False,
    },
    response_schema=TASK_SCHEMA,
    responses={
        200: "Queued again at its old place, the attempt not counted (cancelled if a cancel was pending)",
        404: "Unknown task",
        409: "Stale lease (type .../stale-lease): the worker no longer holds the task",
        422: "Invalid field",
    },
    auth="worker.report",
)
async def release(task_id: str) -> Response:
    """For a worker that cannot finish a task it holds (e.g. it is shutting down): the task goes back to
    the queue for another worker without counting the attempt (event `task.queued`, reason `released`)."""
    body = await read_json_object()
    token = body.req_str("lease_token", aliases=("leaseToken",), max_len=256)
    reason = body.opt_str("reason", min_len=1, max_len=1024)
    body.reject_unknown()
    task: TaskView = await dispatcher_of(current_node()).ask(
        lambda reply: Release(task_id, token, reply, reason=reason)
    )
    return json_response(task_json(task))
