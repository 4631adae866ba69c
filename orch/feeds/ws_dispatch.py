"""`WS /ws/dispatch`: task operations at high rate over one connection, pipelined.

    -> {"id": 1, "op": "dispatch", "core_id": "WORK_AI_01", "priority": 5, "metadata": {...}}
    -> {"id": 2, "op": "dispatch", "core_id": "WORK_AI_02"}
    <- {"id": 2, "ok": true, "result": {"task_id": ..., "status": "queued", ...}}
    <- {"id": 1, "ok": true, "result": {...}}
    -> {"id": 3, "op": "report", "task_id": "..", "lease_token": "..", "status": "sprinted"}
    <- {"id": 3, "ok": false, "error": {"type": ..., "status": 422, "detail": "status: must be one of ..."}}

Worker batches (a worker's prefetch; see `orch.http.worker_items`):

    -> {"id": 4, "op": "claim", "core_id": "WORK_AI_01", "max": 10, "wait": 30}
    <- {"id": 4, "ok": true, "result": {"claims": [{"task": {..}, "lease_token": ..}, ..]}}  ([]: none came)
    -> {"id": 5, "op": "heartbeat_batch", "heartbeats": [{"task_id": .., "lease_token": ..}, ...]}
    -> {"id": 6, "op": "report_batch", "reports": [{"task_id": .., "lease_token": .., "status": ..}, ...]}
    <- {"id": 6, "ok": true, "result": {"results": [{"ok": true, "task": {..}} | {"ok": false, "error": ..}]}}

Up to `feeds.ws_max_in_flight` requests run at once; past that the server stops reading (TCP backpressure)
until one finishes. Answers carry the request's `id` and may come out of order. A bad message - not JSON,
unknown op, bad field, refused by the dispatcher - is answered with a problem-like error; the socket stays
open. Each op is checked against the caller's role (dispatch: task.dispatch; claim/heartbeat/report: the
worker actions). On a graceful shutdown the server stops reading, lets requests in flight answer, then
sends `{"op": "shutdown"}` and closes with 1001.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from quart import Response, websocket

from actors.dispatcher.messages import (
    Claim,
    ClaimedTask,
    ClaimMany,
    Dispatch,
    DispatchAccepted,
    DispatchBatch,
    DispatcherMsg,
    Heartbeat,
    HeartbeatAck,
    Report,
    ReportStatus,
    TaskView,
)
from actors.security.messages import Action, Principal, is_allowed
from orch.feeds.hub import FeedHub
from orch.feeds.metrics import Transport
from orch.feeds.ws_common import (
    CLOSE_GOING_AWAY,
    Close,
    Denied,
    SocketWriter,
    accept_socket,
    close_at_expiry,
    first_message_auth,
    json_fields,
    parse_message,
    principal_summary,
    ws_api_error,
)
from orch.http.app import current_node, json_bytes
from orch.http.body import JsonObject
from orch.http.problems import (
    ApiError,
    Forbidden,
    InternalError,
    ServiceUnavailable,
    ShuttingDown,
    ValidationFailed,
    problem_body,
)
from orch.http.task_input import read_task_spec, read_task_specs
from orch.http.task_views import accepted_json, claim_json, heartbeat_json, task_json
from orch.http.worker_items import (
    MAX_WORKER_BATCH,
    heartbeat_many,
    plain_heartbeat,
    plain_report,
    read_heartbeat_item,
    read_items,
    read_report_item,
    report_many,
)
from orch.logs import correlation_id
from runtime import ActorRef

__all__ = ["MAX_BATCH", "MAX_CLAIM_WAIT", "serve_dispatch_socket"]

_log = logging.getLogger("orch.feeds")

MAX_BATCH = 1000
MAX_CLAIM_WAIT = 60.0
_OPS: dict[str, Action | None] = {
    "dispatch": Action.TASK_DISPATCH,
    "dispatch_batch": Action.TASK_DISPATCH,
    "claim": Action.WORKER_CLAIM,
    "heartbeat": Action.WORKER_HEARTBEAT,
    "heartbeat_batch": Action.WORKER_HEARTBEAT,
    "report": Action.WORKER_REPORT,
    "report_batch": Action.WORKER_REPORT,
    "ping": None,
}
_DISPATCH_FIELDS = ("id", "op")
Dispatcher = ActorRef[DispatcherMsg]


async def serve_dispatch_socket(hub: FeedHub) -> Response | None:
    """The handler of `WS /ws/dispatch` (returns a problem response when the handshake is refused)."""
    principal = await accept_socket(Action.TASK_DISPATCH)
    if isinstance(principal, Denied):
        return principal.response
    await _DispatchConnection(hub, principal).run()
    return None


class _DispatchConnection:
    def __init__(self, hub: FeedHub, principal: Principal | None) -> None:
        self.hub = hub
        self.principal = principal
        self.out = SocketWriter(heartbeat=hub.settings.heartbeat, capacity=hub.settings.ws_max_in_flight)
        self.slots = trio.Semaphore(hub.settings.ws_max_in_flight)
        self.long_polls: set[trio.CancelScope] = set()
        self.handled = 0

    async def run(self) -> None:
        gauge = self.hub.metrics.connections.labels(Transport.WS_DISPATCH)
        gauge.inc()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_then_stop, nursery)
                await self._serve(nursery)
        finally:
            gauge.dec()

    async def _write_then_stop(self, nursery: trio.Nursery) -> None:
        await self.out.run()
        nursery.cancel_scope.cancel()

    async def _serve(self, nursery: trio.Nursery) -> None:
        principal = self.principal
        if principal is None:
            principal = await first_message_auth(Action.TASK_DISPATCH, self.out)
            if principal is None:
                await trio.sleep_forever()  # the writer closes the socket and cancels us
            await self.out.send(json_fields(op="authenticated", **principal_summary(principal)))
        nursery.start_soon(close_at_expiry, principal, self.out)
        node = current_node()
        async with trio.open_nursery() as requests:
            with trio.CancelScope() as reading:
                requests.start_soon(_cancel_on, node.shutdown_requested, reading)
                await self._read_loop(principal, requests)
            # Shutdown: stop reading. Claims waiting for work answer 503 at once; the other requests in
            # flight finish and answer (the server's grace period bounds them).
            for scope in self.long_polls:
                scope.cancel()
        await self.out.send(json_fields(op="shutdown", detail="the node is shutting down"))
        await self.out.send(Close(CLOSE_GOING_AWAY, "node shutting down"))
        await trio.sleep_forever()  # the writer closes the socket and cancels us

    async def _read_loop(self, principal: Principal, requests: trio.Nursery) -> None:
        while True:
            await self.slots.acquire()  # bounded pipelining: stop reading while the window is full
            raw = await websocket.receive()
            requests.start_soon(self._request, principal, raw)

    async def _request(self, principal: Principal, raw: str | bytes) -> None:
        request_id: Any = None
        try:  # every failure becomes an answer; only cancellation escapes
            message = parse_message(raw)
            request_id = _request_id(message)
            op = message.req_str("op", max_len=32, choices=list(_OPS))
            action = _OPS[op]
            if action is not None and not is_allowed(principal.role, action):
                raise Forbidden(f"The role {principal.role.value} may not {op} ({action.value}).")
            answer = _answer(request_id, await self._interruptible(op, message, principal))
        except trio.Cancelled:
            raise
        except Exception as exc:
            error = ws_api_error(exc)
            if isinstance(error, InternalError):
                _log.error("ws dispatch request failed", exc_info=exc)
            answer = _answer_error(request_id, error)
        try:
            await self.out.send(answer)
        finally:
            # Released only once the answer is queued: a client that stops reading answers also stops
            # the server reading its requests (nothing piles up).
            self.slots.release()
        self.handled += 1
        self.hub.metrics.delivered_batch(Transport.WS_DISPATCH, 1)

    async def _interruptible(self, op: str, message: JsonObject, principal: Principal) -> Any:
        """Run `op`; a claim (a long-poll) is cut short with 503 when the node begins shutting down."""
        with trio.CancelScope() as scope:
            if op == "claim":
                self.long_polls.add(scope)
            try:
                return await self._run(op, message, principal)
            finally:
                self.long_polls.discard(scope)
        raise ShuttingDown("The node is shutting down; claim again elsewhere or later.")

    async def _run(self, op: str, message: JsonObject, principal: Principal) -> Any:
        if op == "ping":
            message.reject_unknown(*_DISPATCH_FIELDS)
            return {"pong": True}
        ref = current_node().dispatcher
        if ref is None:
            raise ServiceUnavailable("The dispatcher is not running.")
        handler = _HANDLERS[op]
        return await handler(ref, message, principal)


async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


# -- ops ---------------------------------------------------------------------------------------------------
async def _dispatch(ref: Dispatcher, message: JsonObject, principal: Principal) -> dict[str, Any]:
    spec = read_task_spec(message)
    message.reject_unknown(*_DISPATCH_FIELDS)
    accepted: DispatchAccepted = await ref.ask(lambda reply: Dispatch.of(spec, reply))
    return accepted_json(accepted)


async def _dispatch_batch(ref: Dispatcher, message: JsonObject, principal: Principal) -> dict[str, Any]:
    items = message.opt_list("tasks", max_items=MAX_BATCH)
    message.reject_unknown(*_DISPATCH_FIELDS)
    if not items:
        raise ValidationFailed("tasks", "must be a non-empty array of task objects")
    specs = read_task_specs(items)
    accepted: tuple[DispatchAccepted, ...] = await ref.ask(
        lambda reply: DispatchBatch(tasks=tuple(specs), reply=reply)
    )
    return {"tasks": [accepted_json(a) for a in accepted]}


async def _claim(ref: Dispatcher, message: JsonObject, principal: Principal) -> dict[str, Any] | None:
    core_id = message.req_str("core_id", aliases=("coreId",), max_len=200)
    worker_id = message.opt_str("worker_id", min_len=1, max_len=200) or principal.sub
    lease = message.opt_number("lease", default=30.0, min=1.0, max=3600.0) or 30.0
    wait = message.opt_number("wait", default=30.0, min=0.0, max=MAX_CLAIM_WAIT) or 0.0
    most = message.opt_int("max", min=1, max=MAX_WORKER_BATCH)
    message.reject_unknown(*_DISPATCH_FIELDS)
    if most is not None:
        return await _claim_many(ref, core_id, worker_id, lease, wait, most)
    with trio.move_on_after(wait):
        claimed: ClaimedTask = await ref.ask(
            lambda reply: Claim(core_id=core_id, worker_id=worker_id, reply=reply, lease=lease)
        )
        return claim_json(claimed)
    return None  # nothing came within `wait`


async def _claim_many(
    ref: Dispatcher, core_id: str, worker_id: str, lease: float, wait: float, most: int
) -> dict[str, Any]:
    claimed: tuple[ClaimedTask, ...] = ()
    with trio.move_on_after(wait):
        claimed = await ref.ask(
            lambda reply: ClaimMany(core_id=core_id, worker_id=worker_id, reply=reply, max=most, lease=lease)
        )
    return {"claims": [claim_json(c) for c in claimed]}


async def _heartbeat_batch(ref: Dispatcher, message: JsonObject, principal: Principal) -> dict[str, Any]:
    items = message.opt_list("heartbeats", max_items=MAX_WORKER_BATCH)
    message.reject_unknown(*_DISPATCH_FIELDS)
    parsed = read_items(
        items,
        "heartbeats",
        lambda obj: read_heartbeat_item(obj, min_lease=1.0, max_lease=3600.0),
        plain_heartbeat,
    )
    return await heartbeat_many(ref, parsed, websocket.path)


async def _report_batch(ref: Dispatcher, message: JsonObject, principal: Principal) -> dict[str, Any]:
    items = message.opt_list("reports", max_items=MAX_WORKER_BATCH)
    message.reject_unknown(*_DISPATCH_FIELDS)
    return await report_many(
        ref, read_items(items, "reports", read_report_item, plain_report), websocket.path
    )


async def _heartbeat(ref: Dispatcher, message: JsonObject, principal: Principal) -> dict[str, Any]:
    task_id = message.req_str("task_id", aliases=("taskId",), max_len=200)
    token = message.req_str("lease_token", aliases=("leaseToken",), max_len=256)
    progress = message.opt_obj("progress")
    lease = message.opt_number("lease", min=1.0, max=3600.0)
    message.reject_unknown(*_DISPATCH_FIELDS)
    ack: HeartbeatAck = await ref.ask(
        lambda reply: Heartbeat(
            task_id=task_id,
            lease_token=token,
            reply=reply,
            progress=dict(progress.data) if progress is not None else None,
            lease=lease,
        )
    )
    return heartbeat_json(ack)


async def _report(ref: Dispatcher, message: JsonObject, principal: Principal) -> dict[str, Any]:
    task_id = message.req_str("task_id", aliases=("taskId",), max_len=200)
    token = message.req_str("lease_token", aliases=("leaseToken",), max_len=256)
    status = ReportStatus(message.req_str("status", choices=[s.value for s in ReportStatus]))
    result = message.opt_obj("result")
    progress = message.opt_obj("progress")
    error = message.opt_str("error", max_len=16_384)
    message.reject_unknown(*_DISPATCH_FIELDS)
    view: TaskView = await ref.ask(
        lambda reply: Report(
            task_id=task_id,
            lease_token=token,
            status=status,
            reply=reply,
            result=dict(result.data) if result is not None else None,
            error=error,
            progress=dict(progress.data) if progress is not None else None,
        )
    )
    return task_json(view)


_Handler = Callable[[Dispatcher, JsonObject, Principal], Awaitable[Any]]
_HANDLERS: dict[str, _Handler] = {
    "dispatch": _dispatch,
    "dispatch_batch": _dispatch_batch,
    "claim": _claim,
    "heartbeat": _heartbeat,
    "heartbeat_batch": _heartbeat_batch,
    "report": _report,
    "report_batch": _report_batch,
}


# -- answers -----------------------------------------------------------------------------------------------
def _request_id(message: JsonObject) -> Any:
    value = message.data.get("id")
    if value is None:
        raise ValidationFailed("id", "is required (answers carry it)")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValidationFailed("id", "must be a string or an integer")
    if isinstance(value, str) and not 1 <= len(value) <= 128:
        raise ValidationFailed("id", "must be 1..128 characters long")
    return value


def _answer(request_id: Any, result: Any) -> str:
    # orjson (via json_bytes): a batch answer carries many tasks; json.dumps was ~4 % of the node's CPU.
    return json_bytes({"id": request_id, "ok": True, "result": result}).decode()


def _answer_error(request_id: Any, error: ApiError) -> str:
    body = problem_body(error, instance=websocket.path, request_id=correlation_id.get())
    return json_bytes({"id": request_id, "ok": False, "error": body}).decode()
