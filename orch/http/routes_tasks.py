"""Task endpoints: dispatch (single, batch, `stay`), list/get, cancel, requeue, events, status changes.

Every answer that reports a change comes after the change and its event are committed (the dispatcher
acknowledges only then). Domain errors are mapped once in `orch.http.errors`: unknown task 404, illegal
transition or stale lease 409, out-of-range field 422.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quart import Response

from actors.dispatcher.messages import (
    Cancel,
    Dispatch,
    DispatchAccepted,
    DispatchBatch,
    GetTask,
    ListEvents,
    ListTasks,
    Report,
    Requeue,
    SetStatus,
    TaskPage,
    TaskSpec,
    TaskStatus,
    TaskView,
)
from actors.security.messages import Role
from actors.storage import StoredEvent
from orch.http.app import api_error_for, current_node, json_bytes, json_response
from orch.http.auth import PRINCIPAL_KEY, Guard, authorize_scope, current_principal
from orch.http.body import JsonObject, json_object_of, read_json_object, request_header
from orch.http.edge import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    read_body,
    scope_header,
    send_json,
    send_problem,
    shielded_final_send,
)
from orch.http.problems import Forbidden, ValidationFailed
from orch.http.query import query_csv, query_int, query_str
from orch.http.routing import QueryParam, Router
from orch.http.task_input import (
    DISPATCH_SCHEMA,
    REPORT_SCHEMA,
    TASK_FIELDS,
    StatusChange,
    read_dispatch,
    read_status_change,
    read_task_specs,
)
from orch.http.task_views import TASK_SCHEMA, accepted_json, event_json, task_json
from orch.http.waiting import dispatcher_of, wait_for_end, within

if TYPE_CHECKING:
    from orch.node import Node

__all__ = ["MAX_BATCH", "DispatchBatchEndpoint", "DispatchEndpoint", "tasks"]

tasks = Router("tasks")

MAX_BATCH = 1000

_ACCEPTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **TASK_SCHEMA["properties"],
        "created": {"type": "boolean", "description": "false: the idempotency key matched a task"},
        "queue_position": {"type": "integer"},
        "estimated_start": {"type": ["string", "null"], "format": "date-time"},
    },
    "required": ["task_id", "status", "created", "estimated_start"],
}
_ERRORS = {
    404: "Unknown task",
    409: "Illegal transition (type .../illegal-transition) or stale lease (type .../stale-lease)",
    422: "Invalid field",
}


def _idempotency_key(value: str | None) -> str | None:
    """The Idempotency-Key header's value (422 unless 1..200 characters)."""
    if value is not None and not 0 < len(value) <= 200:
        raise ValidationFailed("Idempotency-Key", "must be 1..200 characters")
    return value


async def _dispatched(node: Node, spec: TaskSpec) -> DispatchAccepted:
    """Queue `spec`; answers once the task is durable."""
    accepted: DispatchAccepted = await dispatcher_of(node).ask(lambda reply: Dispatch.of(spec, reply))
    return accepted


def _location(accepted: DispatchAccepted) -> str:
    return f"/tasks/{accepted.task.id}"


@tasks.post(
    "/dispatch",
    summary="Dispatch a task to a core",
    request_schema=DISPATCH_SCHEMA,
    response_schema=_ACCEPTED_SCHEMA,
    responses={
        200: "The idempotency key matched an existing task; or, with stay, the task's state at the end",
        201: "Queued (durable)",
        413: "Body too large",
        422: "Invalid field",
    },
    auth="task.dispatch",
)
async def dispatch() -> Response:
    """Queue one task. Accepts the seed's `coreId`; `Idempotency-Key` header or `idempotency_key` field.

    With `stay: true` the request stays open until the task has a final status (succeeded, cancelled,
    dead) or `wait` seconds pass (default 300, at most 3600), and answers 200 with the task as it is then
    (`finished` tells which). A client that disconnects leaves the task running.
    """
    body = await read_json_object()
    spec, wait = read_dispatch(body, idempotency_key=_idempotency_key(request_header(b"idempotency-key")))
    node = current_node()
    accepted = await _dispatched(node, spec)
    answer = accepted_json(accepted)
    if spec.stay:
        task_id = accepted.task.id
        final = await within(node, wait, lambda: wait_for_end(node, task_id))
        if final is None:  # deadline or shutdown: answer with the task as it is now
            now: TaskView = await dispatcher_of(node).ask(lambda reply: GetTask(task_id, reply))
            final = now
        answer.update(task_json(final))
        response = json_response(answer, 200)
        response.timeout = None
        return response
    status = 201 if accepted.created else 200
    return json_response(answer, status, {"Location": _location(accepted)})


def _replay(raw: bytes, receive: Receive) -> Receive:
    """`receive` with the body it already gave (`raw`) given again first."""
    pending = [{"type": "http.request", "body": raw, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


class DispatchEndpoint:
    """POST /dispatch as a raw ASGI handler that the `Edge` calls directly, skipping Quart's request
    machinery (as `WebhookEndpoint` does for POST /webhook). Same answers as the Quart route `dispatch`:
    the same auth check (`authorize_scope`: 401/403/429, RateLimit headers), body rules (408/413/415/400,
    422 naming the field), problem+json errors through the one error table, 201/200 with Location.

    A `stay` dispatch is handed on to the Quart route (with the body it sent and the caller already
    checked): it waits for the task's end and leaves when the client disconnects, as Quart arranges.
    Only that hand-off needs the Edge's final-send shield, so the endpoint is `quart_free` and shields
    the hand-off itself.
    """

    quart_free = True  # the Edge adds no shield; `stay` hand-offs get `shielded_final_send`

    def __init__(
        self, node: Node, quart: ASGIApp, guard: Guard, *, max_body: int, body_timeout: float
    ) -> None:
        self.node = node
        self.quart = quart
        self.guard = guard
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request (the Edge has set the request id and counts and logs the answer)."""
        try:
            principal = await authorize_scope(self.node, self.guard, scope)
            raw = await read_body(scope, receive, limit=self.max_body, time_limit=self.body_timeout)
            body = json_object_of(raw, scope_header(scope, b"content-type"))
            key = _idempotency_key(scope_header(scope, b"idempotency-key"))
            spec, _ = read_dispatch(body, idempotency_key=key)
            accepted = None if spec.stay else await _dispatched(self.node, spec)
        except Exception as exc:  # what Quart's error handler does for the route (app._handle_error)
            await send_problem(send, scope, api_error_for(exc, scope))
            return
        if accepted is None:
            scope[PRINCIPAL_KEY] = principal
            await self.quart(scope, _replay(raw, receive), shielded_final_send(send))
            return
        status = 201 if accepted.created else 200
        location = (b"location", _location(accepted).encode())
        await send_json(send, status, json_bytes(accepted_json(accepted)), headers=[location])


@tasks.post(
    "/dispatch/batch",
    summary="Dispatch many tasks in one durable write",
    request_schema={
        "type": "object",
        "properties": {
            "tasks": {
                "type": "array",
                "maxItems": MAX_BATCH,
                "items": {"type": "object", "properties": TASK_FIELDS, "required": ["core_id"]},
            }
        },
        "required": ["tasks"],
    },
    response_schema={"type": "object", "properties": {"tasks": {"type": "array", "items": _ACCEPTED_SCHEMA}}},
    responses={201: "All queued (durable); all or none", 413: "Body too large", 422: "Invalid field"},
    auth="task.dispatch",
)
async def dispatch_batch() -> Response:
    """All tasks are accepted in one transaction, or none (a bad field is named: `tasks.3.core_id`)."""
    body = await read_json_object()
    return json_response(await _batch_answer(current_node(), _batch_specs(body)), 201)


def _batch_specs(body: JsonObject) -> tuple[TaskSpec, ...]:
    """The specs of a batch body: `tasks`, 1 to MAX_BATCH items; any other member is refused."""
    items = body.opt_list("tasks", max_items=MAX_BATCH)
    body.reject_unknown()
    if not items:
        raise ValidationFailed("tasks", "is required and must not be empty")
    return tuple(read_task_specs(items))


async def _batch_answer(node: Node, specs: tuple[TaskSpec, ...]) -> dict[str, Any]:
    """Queue `specs` in one durable write; the answer once all are durable."""
    accepted: tuple[DispatchAccepted, ...] = await dispatcher_of(node).ask(
        lambda reply: DispatchBatch(specs, reply)
    )
    return {"tasks": [accepted_json(a) for a in accepted]}


class DispatchBatchEndpoint:
    """POST /dispatch/batch as a raw ASGI handler for the `Edge` to call directly (as `DispatchEndpoint`
    for POST /dispatch): the same auth check, body rules and answers as the Quart route `dispatch_batch`,
    without Quart's request machinery (its cost per request is several us per task of a batch of 100).
    Registered by `orch.http.app._raw_routes` with the route's guard."""

    quart_free = True  # never hands the request to Quart: no final shield

    def __init__(self, node: Node, guard: Guard, *, max_body: int, body_timeout: float) -> None:
        self.node = node
        self.guard = guard
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request (the Edge has set the request id and counts and logs the answer)."""
        try:
            await authorize_scope(self.node, self.guard, scope)
            raw = await read_body(scope, receive, limit=self.max_body, time_limit=self.body_timeout)
            body = json_object_of(raw, scope_header(scope, b"content-type"))
            answer = await _batch_answer(self.node, _batch_specs(body))
        except Exception as exc:  # what Quart's error handler does for the route (app._handle_error)
            await send_problem(send, scope, api_error_for(exc, scope))
            return
        await send_json(send, 201, json_bytes(answer))


@tasks.get(
    "/tasks",
    summary="List tasks, newest first",
    query=(
        QueryParam("status", "comma-separated statuses, e.g. queued,running"),
        QueryParam("core_id", "only this core"),
        QueryParam("cursor", "next_cursor of the previous page"),
        QueryParam("limit", "page size (1..1000, default 100)", {"type": "integer"}),
    ),
    response_schema={
        "type": "object",
        "properties": {
            "tasks": {"type": "array", "items": TASK_SCHEMA},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    responses={200: "One page", 422: "Invalid query parameter"},
    auth="task.read",
)
async def list_tasks() -> Response:
    """Cursor pagination: pass `next_cursor` back as `cursor` until it is null."""
    statuses = query_csv("status", choices=[s.value for s in TaskStatus])
    core = query_str("core_id", max_len=200)
    cursor = query_str("cursor", max_len=200)
    limit = query_int("limit", default=100, min=1, max=1000)
    wanted = frozenset(TaskStatus(s) for s in statuses) if statuses else None
    page: TaskPage = await dispatcher_of(current_node()).ask(
        lambda reply: ListTasks(reply, statuses=wanted, core_id=core, cursor=cursor, limit=limit)
    )
    return json_response({"tasks": [task_json(t) for t in page.tasks], "next_cursor": page.next_cursor})


@tasks.get(
    "/tasks/<task_id>",
    summary="One task",
    response_schema=TASK_SCHEMA,
    responses={200: "The task", 404: "Unknown task"},
    auth="task.read",
)
async def get_task(task_id: str) -> Response:
    """The task as stored."""
    task: TaskView = await dispatcher_of(current_node()).ask(lambda reply: GetTask(task_id, reply))
    return json_response(task_json(task))


@tasks.post(
    "/tasks/<task_id>/cancel",
    summary="Cancel a task",
    request_schema={"type": "object", "properties": {"reason": {"type": "string"}}},
    response_schema=TASK_SCHEMA,
    responses={200: "Cancelled, or cancel requested from its worker", **_ERRORS},
    auth="task.cancel",
)
async def cancel_task(task_id: str) -> Response:
    """A waiting task is cancelled at once; a held one is flagged, its worker told on its next heartbeat."""
    body = await read_json_object(allow_empty=True)
    reason = body.opt_str("reason", min_len=1, max_len=1024)
    body.reject_unknown()
    task: TaskView = await dispatcher_of(current_node()).ask(
        lambda reply: Cancel(task_id, reply, reason=reason)
    )
    return json_response(task_json(task))


@tasks.post(
    "/tasks/<task_id>/requeue",
    summary="Put a dead task back in the queue",
    request_schema={"type": "object", "properties": {"reset_attempts": {"type": "boolean", "default": True}}},
    response_schema=TASK_SCHEMA,
    responses={200: "Queued again", **_ERRORS},
    auth="task.retry",
)
async def requeue_task(task_id: str) -> Response:
    """Dead -> queued (anything else is 409), by default with a fresh attempt budget."""
    body = await read_json_object(allow_empty=True)
    reset = body.opt_bool("reset_attempts", default=True)
    body.reject_unknown()
    task: TaskView = await dispatcher_of(current_node()).ask(
        lambda reply: Requeue(task_id, reply, reset_attempts=reset)
    )
    return json_response(task_json(task))


@tasks.get(
    "/jobs/<job_id>/events",
    summary="A task's events, oldest first",
    query=(
        QueryParam("after", "only events with seq > after", {"type": "integer"}),
        QueryParam("limit", "at most this many (1..1000, default 1000)", {"type": "integer"}),
    ),
    response_schema={
        "type": "object",
        "properties": {"task_id": {"type": "string"}, "events": {"type": "array"}},
    },
    responses={200: "Events", 404: "Unknown task", 422: "Invalid query parameter"},
    auth="task.read",
)
async def job_events(job_id: str) -> Response:
    """`seq` is the SSE id: pass the last one as `after` to page on."""
    after = query_int("after", default=0, min=0, max=2**62)
    limit = query_int("limit", default=1000, min=1, max=1000)
    ref = dispatcher_of(current_node())
    events: tuple[StoredEvent, ...] = await ref.ask(
        lambda reply: ListEvents(reply, task_id=job_id, after_seq=after, limit=limit)
    )
    if not events:
        await ref.ask(lambda reply: GetTask(job_id, reply))  # 404 for an unknown task
    return json_response({"task_id": job_id, "events": [event_json(e) for e in events]})


async def apply_status_change(task_id: str, change: StatusChange) -> TaskView:
    """A worker's report (with its lease token), or an operator's lease-free change (without one)."""
    ref = dispatcher_of(current_node())
    if change.lease_token is not None:
        token = change.lease_token
        return await ref.ask(
            lambda reply: Report(
                task_id,
                token,
                change.report_status,
                reply,
                result=change.result,
                error=change.error,
                progress=change.progress,
            )
        )
    principal = current_principal()
    if principal is not None and principal.role not in (Role.OPERATOR, Role.ADMIN):
        raise Forbidden(
            "Only an operator may change a task's status without its lease_token; a worker sends the "
            "token of its claim, an integration the signed POST /webhook."
        )
    if change.status == "cancelled":  # graceful: a held task is flagged, its worker stops on its heartbeat
        return await ref.ask(lambda reply: Cancel(task_id, reply, reason=change.reason))
    if change.status == "queued" and not change.reset_attempts:
        return await ref.ask(lambda reply: Requeue(task_id, reply, reset_attempts=False))
    progress = change.progress
    if change.status == "progress":
        target, progress = TaskStatus.RUNNING, progress or {}
    else:
        target = TaskStatus(change.status)
    by = principal.sub if principal is not None else None
    return await ref.ask(
        lambda reply: SetStatus(
            task_id,
            target,
            reply,
            result=change.result,
            error=change.error,
            progress=progress,
            principal=by,
            reason=change.reason,
        )
    )


@tasks.put(
    "/jobs/<job_id>/status",
    summary="Change a task's status (the seed's route)",
    request_schema=REPORT_SCHEMA,
    response_schema=TASK_SCHEMA,
    responses={200: "Applied (durable)", 403: "A lease-free change by a non-operator", **_ERRORS},
    auth="task.set_status",
)
async def set_job_status(job_id: str) -> Response:
    """Workers report `running`/`progress`/`succeeded`/`failed`/`cancelled` with their `lease_token`
    (a stale token is 409 `stale-lease`; repeating the final report is harmless).

    Without a token the change is an operator's (operator or admin role; 403 otherwise) and is checked
    against the task lifecycle (409 `illegal-transition` otherwise): `running`/`progress` on a claimed or
    running task (its worker keeps the lease); `succeeded`, `failed`, `timed_out` on a claimed or running
    task (failed and timed_out retry with backoff or go dead); `dead` on a claimed or running task;
    `cancelled` cancels a waiting task at once and asks a held task's worker to stop (next heartbeat);
    `queued` re-queues a dead task (fresh attempts unless `reset_attempts: false`) or takes a claimed or
    running task back from its worker (attempt counted). Any final change to a held task makes its
    worker's lease stale. The event records who (`by`) and `reason`; repeating a final status is
    harmless. Statuses `queued`, `timed_out` and `dead` are never sent with a `lease_token`."""
    change = read_status_change(await read_json_object(), require_lease=False)
    return json_response(task_json(await apply_status_change(job_id, change)))
