"""Lock endpoints: acquire (optionally waiting), release, extend, get, list.

Locks are leases with fencing tokens: a grant returns a secret `token` (proof for release/extend) and a
public `fence` that strictly increases per resource; a protected service refuses writes carrying a fence
lower than the highest it has seen. Resource names are 1..512 characters without `/`.
"""

from __future__ import annotations

import time
from typing import Any

from quart import Response

from actors.locks.messages import (
    Acquire,
    Extend,
    ExtendResult,
    GetLock,
    LeaseGrant,
    ListLocks,
    LockInfo,
    LockMode,
    Release,
    ReleaseResult,
)
from orch.http.app import current_node, json_response
from orch.http.body import read_json_object
from orch.http.caller import caller_name
from orch.http.problems import Conflict
from orch.http.query import query_int, query_str
from orch.http.routing import QueryParam, Router
from orch.http.task_views import iso
from orch.http.waiting import locks_of, within

__all__ = ["MAX_LOCK_WAIT", "locks"]

locks = Router("locks")

MAX_LOCK_WAIT = 300.0
MAX_TTL = 86_400.0
_PRIORITY = (-100, 100)

_LOCK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "resource": {"type": "string"},
        "held": {"type": "boolean"},
        "holders": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "owner": {"type": "string"},
                    "fence": {"type": "integer"},
                    "mode": {"enum": [m.value for m in LockMode]},
                    "remaining": {"type": "number"},
                },
            },
        },
        "waiters": {"type": "integer"},
        "last_fence": {"type": "integer"},
    },
}
_GRANT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "resource": {"type": "string"},
        "owner": {"type": "string"},
        "token": {"type": "string", "description": "secret: proves ownership for release/extend"},
        "fence": {"type": "integer", "description": "fencing token, strictly increasing per resource"},
        "mode": {"enum": [m.value for m in LockMode]},
        "ttl": {"type": "number"},
        "waited": {"type": "number"},
        "expires_at": {"type": "string", "format": "date-time"},
    },
}
_TOKEN_ERRORS = {404: "No such route", 409: "Not the holder, lease expired or released", 422: "Invalid field"}


def lock_json(info: LockInfo) -> dict[str, Any]:
    """One resource's state (never a holder's token)."""
    return {
        "resource": info.resource,
        "held": bool(info.holders),
        "holders": [
            {"owner": h.owner, "fence": h.fence, "mode": h.mode.value, "remaining": round(h.remaining, 3)}
            for h in info.holders
        ],
        "waiters": info.waiters,
        "last_fence": info.last_fence,
    }


def grant_json(grant: LeaseGrant) -> dict[str, Any]:
    """A granted lease, with its secret token (only ever sent to the new holder)."""
    return {
        "resource": grant.resource,
        "owner": grant.owner,
        "token": grant.token,
        "fence": grant.fence,
        "mode": grant.mode.value,
        "ttl": grant.ttl,
        "waited": round(grant.waited, 6),
        "expires_at": iso(time.time() + grant.ttl),
    }


@locks.get(
    "/locks",
    summary="List held locks",
    query=(
        QueryParam("owner", "only locks held by this owner"),
        QueryParam("prefix", "only resources starting with this"),
        QueryParam("limit", "at most this many (1..1000, default 1000)", {"type": "integer"}),
    ),
    response_schema={"type": "object", "properties": {"locks": {"type": "array", "items": _LOCK_SCHEMA}}},
    responses={200: "Held locks, by resource name", 422: "Invalid query parameter"},
    auth="lock.read",
)
async def list_locks() -> Response:
    """Held locks, optionally filtered by owner and/or resource prefix."""
    owner = query_str("owner")
    prefix = query_str("prefix")
    limit = query_int("limit", default=1000, min=1, max=1000)
    found: tuple[LockInfo, ...] = await locks_of(current_node()).ask(
        lambda reply: ListLocks(reply, owner=owner, prefix=prefix, limit=limit)
    )
    return json_response({"locks": [lock_json(info) for info in found]})


@locks.get(
    "/locks/<resource>",
    summary="One lock",
    response_schema=_LOCK_SCHEMA,
    responses={200: "The resource's holders, waiters and last fence (free: no holders)"},
    auth="lock.read",
)
async def get_lock(resource: str) -> Response:
    """A resource that nobody holds answers 200 with `held: false`."""
    info: LockInfo = await locks_of(current_node()).ask(lambda reply: GetLock(resource, reply))
    return json_response(lock_json(info))


@locks.post(
    "/locks/<resource>/acquire",
    summary="Acquire a lease on a resource",
    request_schema={
        "type": "object",
        "properties": {
            "owner": {"type": "string", "description": "default: the caller's name"},
            "ttl": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TTL, "default": 30},
            "priority": {"type": "integer", "minimum": _PRIORITY[0], "maximum": _PRIORITY[1], "default": 0},
            "wait": {"type": "number", "minimum": 0, "maximum": MAX_LOCK_WAIT, "default": 0},
            "mode": {"enum": [m.value for m in LockMode], "default": "exclusive"},
        },
    },
    response_schema=_GRANT_SCHEMA,
    responses={200: "Granted", 409: "Held by another owner (and not granted within `wait`)", 422: "Invalid"},
    auth="lock.acquire",
)
async def acquire(resource: str) -> Response:
    """`wait` 0 (default) answers at once; otherwise the request queues (priority with aging, then FIFO)
    for up to `wait` seconds. A waiter that gives up or disconnects leaves nothing in the queue."""
    body = await read_json_object(allow_empty=True)
    owner = body.opt_str("owner", min_len=1, max_len=512) or caller_name() or "anonymous"
    ttl = body.opt_number("ttl", default=30.0, min=0.001, max=MAX_TTL) or 30.0
    priority = body.opt_int("priority", default=0, min=_PRIORITY[0], max=_PRIORITY[1]) or 0
    wait = body.opt_number("wait", default=0.0, min=0.0, max=MAX_LOCK_WAIT) or 0.0
    mode = LockMode(body.opt_str("mode", choices=[m.value for m in LockMode]) or "exclusive")
    body.reject_unknown()
    node = current_node()
    ref = locks_of(node)

    def make(reply: Any) -> Acquire:
        return Acquire(resource, owner, ttl, reply, priority=priority, wait=wait > 0, mode=mode)

    async def take() -> LeaseGrant:
        return await ref.ask(make)

    grant = await take() if wait <= 0 else await within(node, wait, take)
    if grant is None:
        raise Conflict(f"{resource!r}: not granted within {wait:g} s (held by another owner)")
    response = json_response(grant_json(grant))
    response.timeout = None
    return response


@locks.post(
    "/locks/<resource>/release",
    summary="Release a lease",
    request_schema={"type": "object", "properties": {"token": {"type": "string"}}, "required": ["token"]},
    response_schema={
        "type": "object",
        "properties": {
            "resource": {"type": "string"},
            "outcome": {"enum": ["released", "already_released", "expired"]},
        },
    },
    responses={200: "Released (repeats are harmless)", **_TOKEN_ERRORS},
    auth="lock.release",
)
async def release(resource: str) -> Response:
    """Compare-and-set on the token: the holder's release is idempotent, anyone else's is refused (409)."""
    body = await read_json_object()
    token = body.req_str("token", max_len=256)
    body.reject_unknown()
    result: ReleaseResult = await locks_of(current_node()).ask(lambda reply: Release(resource, token, reply))
    return json_response({"resource": result.resource, "outcome": result.outcome.value})


@locks.post(
    "/locks/<resource>/extend",
    summary="Extend a lease",
    request_schema={
        "type": "object",
        "properties": {"token": {"type": "string"}, "by": {"type": "number", "exclusiveMinimum": 0}},
        "required": ["token", "by"],
    },
    response_schema={
        "type": "object",
        "properties": {
            "resource": {"type": "string"},
            "fence": {"type": "integer"},
            "remaining": {"type": "number"},
            "expires_at": {"type": "string", "format": "date-time"},
        },
    },
    responses={200: "Extended (never shortened)", **_TOKEN_ERRORS},
    auth="lock.acquire",
)
async def extend(resource: str) -> Response:
    """Adds `by` seconds to the lease; fails (409) once it expired or for anyone but the holder."""
    body = await read_json_object()
    token = body.req_str("token", max_len=256)
    by = body.req_number("by", min=0.001, max=MAX_TTL)
    body.reject_unknown()
    result: ExtendResult = await locks_of(current_node()).ask(
        lambda reply: Extend(resource, token, by, reply)
    )
    return json_response(
        {
            "resource": result.resource,
            "fence": result.fence,
            "remaining": round(result.remaining, 3),
            "expires_at": iso(time.time() + result.remaining),
        }
    )
