"""`POST /webhook`: signed task updates from external systems.

Order of work: read the RAW body (bounded by server.max_body_bytes) -> one ask to the security actor
that rate-limits the client address and verifies the signature over those exact bytes (X-Signature,
GitHub, Standard Webhooks; timestamp tolerance; replay refused) -> parse the JSON -> apply it to the task
through the dispatcher -> answer once the replay keys are durable too. The verdict comes at once with a
`Receipt` for the keys' commit, so that commit and the dispatcher's share the wait (usually one group
commit) instead of running one after the other. Every malformed header or body is a 4xx. See
WEBHOOK_DESCRIPTION for the event mapping.

The body is read before the rate limit is taken (so an over-limit client sending an oversized body hears
413, not 429): the server reads it off the connection either way, and a single security round trip per
delivery is what keeps the route near the baseline's cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from quart import Response, request
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout

from actors.dispatcher.messages import (
    DispatcherMsg,
    Report,
    ReportStatus,
    SetStatus,
    TaskStatus,
    TaskView,
)
from actors.security.messages import Receipt, VerifyWebhook, WebhookVerdict
from orch.domain_metrics import counted_verification
from orch.http.app import api_error_for, current_node, json_bytes, json_response
from orch.http.auth import client_address, scope_client
from orch.http.body import JsonObject, parse_json_object
from orch.http.edge import Receive, Scope, Send, read_body, send_json, send_problem
from orch.http.problems import (
    ApiError,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
    problem,
)
from orch.http.problems import RequestTimeout as RequestTimeoutError
from orch.http.routing import Router
from runtime import ActorRef

if TYPE_CHECKING:
    from orch.node import Node

__all__ = [
    "EVENT_STATUS",
    "WEBHOOK_DESCRIPTION",
    "Delivery",
    "WebhookEndpoint",
    "handle_delivery",
    "read_delivery",
    "webhook_routes",
]

webhook_routes = Router("webhooks")

SIGNATURE_HEADERS = frozenset(
    {
        b"x-signature",
        b"x-hub-signature-256",
        b"x-github-delivery",
        b"webhook-id",
        b"webhook-timestamp",
        b"webhook-signature",
    }
)

# event name -> the status it reports. `task.status` / `task.updated` (or no event) use the `status` field.
EVENT_STATUS: dict[str, ReportStatus] = {
    "task.started": ReportStatus.RUNNING,
    "task.running": ReportStatus.RUNNING,
    "task.progress": ReportStatus.PROGRESS,
    "task.completed": ReportStatus.SUCCEEDED,
    "task.succeeded": ReportStatus.SUCCEEDED,
    "task.failed": ReportStatus.FAILED,
    "task.cancelled": ReportStatus.CANCELLED,
    "task.canceled": ReportStatus.CANCELLED,
}
STATUS_WORDS: dict[str, ReportStatus] = {
    **{s.value: s for s in ReportStatus},
    "completed": ReportStatus.SUCCEEDED,
    "canceled": ReportStatus.CANCELLED,
}
GENERIC_EVENTS = frozenset({"task.status", "task.updated"})

WEBHOOK_DESCRIPTION = """Signed task updates. The signature is checked over the raw body, by whichever
scheme's header is present: `X-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "{t}.{body}")>` (several v1
allowed), GitHub `X-Hub-Signature-256: sha256=<hex>` + `X-GitHub-Delivery`, or Standard Webhooks
(`webhook-id`, `webhook-timestamp`, `webhook-signature` with v1 HMAC or v1a Ed25519). Timestamps must be
within the tolerance (300 s); a signature, delivery id or webhook-id seen before is refused (409), also when
the first delivery failed to apply: send a new delivery to retry.

Body: `{"event": ..., "task_id": ..., "status": ..., "data": {...}, "lease_token": ...}`.
Event mapping: `task.started`/`task.running` -> running; `task.progress` -> progress (`data` is the
progress); `task.completed`/`task.succeeded` -> succeeded (`data` is the result); `task.failed` -> failed
(`data.error` is the error message, `data` the result); `task.cancelled` -> cancelled. `task.status`,
`task.updated` or no `event` use `status` (running, progress, succeeded/completed, failed, cancelled).
With a `lease_token` (also accepted as `data.lease_token`: the token the integration got when it claimed
the task) the update is a worker report. Without one, the signature is the authority: the change is
applied lease-free, checked against the task lifecycle — running/progress on a claimed or running task
(its worker keeps its lease); completed/failed on a claimed or running task (a failure retries with
backoff or goes dead); cancelled on a waiting or held task (at once). A final change to a held task
makes its worker's lease stale (it is told to stop). The task event records `by: webhook:<scheme>` and
the delivery. Repeating a final status is harmless (200, unchanged). A change the lifecycle does not
allow (e.g. completed for a task still queued) is 409 `illegal-transition`; a stale token 409
`stale-lease`. Events that are not task events (e.g. a GitHub `ping`) are acknowledged with
`applied: false` and change nothing. Answers 200 once the change and the delivery's replay record are
durable. A delivery that got no answer because the node stopped or crashed first may apply again when it
is sent again after a restart, as a sender's retry would."""

LEASE_FREE_TARGET: dict[ReportStatus, TaskStatus] = {
    ReportStatus.RUNNING: TaskStatus.RUNNING,
    ReportStatus.PROGRESS: TaskStatus.RUNNING,
    ReportStatus.SUCCEEDED: TaskStatus.SUCCEEDED,
    ReportStatus.FAILED: TaskStatus.FAILED,
    ReportStatus.CANCELLED: TaskStatus.CANCELLED,
}


def _verification_error(verdict: WebhookVerdict) -> ApiError:
    slug = {400: "bad-signature-header", 401: "bad-signature", 409: "webhook-replayed"}.get(
        verdict.status, "webhook-rejected"
    )
    headers = {"WWW-Authenticate": 'Signature realm="orch-webhook"'} if verdict.status == 401 else None
    return problem(verdict.status, slug, f"webhook rejected: {verdict.reason}", headers=headers)


async def _raw_body() -> bytes:
    try:
        return await request.get_data(cache=True, as_text=False, parse_form_data=False)
    except RequestEntityTooLarge:
        raise PayloadTooLarge("The request body exceeds the configured limit.") from None
    except RequestTimeout:
        raise RequestTimeoutError("The request body did not arrive in time.") from None


@dataclass(frozen=True, slots=True)
class Delivery:
    """What verification and the mapping need from one request's headers."""

    client: str
    signature_headers: dict[str, str]  # by lower-case name
    mimetype: str | None  # of Content-Type, lower case, without parameters
    github_event: str | None  # X-GitHub-Event


def read_delivery(pairs: Iterable[tuple[bytes, bytes]], client: str) -> Delivery:
    """One pass over the raw header pairs (as in the ASGI scope).

    `name in request.headers` raises and catches a KeyError inside werkzeug for every absent name. A
    repeated header keeps its first value, like `request.headers[name]`.
    """
    found: dict[str, str] = {}
    content_type = github_event = None
    for key, value in pairs:
        name = bytes(key).lower()
        if name in SIGNATURE_HEADERS:
            found.setdefault(name.decode("latin-1"), bytes(value).decode("latin-1"))
        elif name == b"content-type" and content_type is None:
            content_type = bytes(value).decode("latin-1")
        elif name == b"x-github-event" and github_event is None:
            github_event = bytes(value).decode("latin-1")
    # What werkzeug's `request.mimetype` gives: the part before any parameters, lower case.
    mimetype = content_type.partition(";")[0].strip().lower() if content_type is not None else None
    return Delivery(client, found, mimetype, github_event)


async def _verify(
    node: Node, headers: dict[str, str], raw: bytes, client: str, durable: Receipt
) -> WebhookVerdict:
    """Rate-limit `client` and verify the delivery in one counted ask (load-shed: a full mailbox is a 503);
    `durable` settles once the delivery's replay keys are committed."""
    security = node.security
    if security is None:
        raise ServiceUnavailable("The security service is not running.")
    return await counted_verification(
        node, security, lambda r: VerifyWebhook(headers, raw, client, r, "webhook", durable)
    )


def _dispatcher(node: Node) -> ActorRef[DispatcherMsg]:
    ref = node.dispatcher
    if ref is None:
        raise ServiceUnavailable("The dispatcher is not running.")
    return ref


def _required_str(body: JsonObject, key: str, alias: str, max_len: int) -> str:
    """`body.req_str(key, aliases=(alias,), max_len=max_len)`, read directly when the member is plainly
    valid (the usual delivery: the accessor's bookkeeping costs ~2 us); else the accessor and its 422."""
    value = body.data.get(key)
    if type(value) is str and 1 <= len(value) <= max_len and alias not in body.data:
        return value
    return body.req_str(key, aliases=(alias,), max_len=max_len)


def _optional_str(body: JsonObject, key: str, alias: str, max_len: int) -> str | None:
    """`body.opt_str(key, aliases=(alias,), max_len=max_len)`, read directly in the usual cases (see
    `_required_str`)."""
    value = body.data.get(key)
    if alias not in body.data and (value is None or (type(value) is str and len(value) <= max_len)):
        return value
    return body.opt_str(key, aliases=(alias,), max_len=max_len)


def _data_member(body: JsonObject) -> dict[str, Any] | None:
    """A copy of the optional `data` object (`body.opt_obj("data")`, read directly when it is one)."""
    value = body.data.get("data")
    if type(value) is dict:
        return dict(value)
    data_obj = body.opt_obj("data")  # absent, null, or the 422 for anything else
    return dict(data_obj.data) if data_obj is not None else None


def _target_status(event: str | None, body: JsonObject) -> ReportStatus | None:
    """The status the delivery reports; None for events that are not task updates."""
    if event is not None and event in EVENT_STATUS:
        return EVENT_STATUS[event]
    if event is not None and event not in GENERIC_EVENTS:
        return None
    word = body.req_str("status", max_len=32, choices=list(STATUS_WORDS))
    return STATUS_WORDS[word]


def _view(task: TaskView) -> dict[str, Any]:
    return {"task_id": task.id, "status": task.status.value}


async def _apply(node: Node, body: JsonObject, event: str | None, verdict: WebhookVerdict) -> dict[str, Any]:
    status = _target_status(event, body)
    if status is None:
        return {"applied": False, "reason": f"event {event!r} is not a task event; nothing to do"}
    task_id = _required_str(body, "task_id", "taskId", 128)
    data = _data_member(body)
    lease = _optional_str(body, "lease_token", "leaseToken", 256)
    if lease is None and data is not None and isinstance(data.get("lease_token"), str):
        lease = data.pop("lease_token")
    error = None
    if status is ReportStatus.FAILED:
        error = str((data or {}).get("error", "reported failed by webhook"))[:2000]
    elif status is ReportStatus.CANCELLED and data is not None and "reason" in data:
        error = str(data["reason"])[:2000]
    result = data if status in (ReportStatus.SUCCEEDED, ReportStatus.FAILED) else None
    progress = data if status is ReportStatus.PROGRESS else None
    if status is ReportStatus.PROGRESS and progress is None:
        progress = {}
    if lease is None:
        by = f"webhook:{verdict.scheme}"
        detail = f"{event or 'task.status'} delivery {verdict.delivery_id}"[:500]
        target = LEASE_FREE_TARGET[status]
        task: TaskView = await _dispatcher(node).ask(
            lambda r: SetStatus(
                task_id, target, r, result=result, error=error, progress=progress, principal=by, reason=detail
            )
        )
        return {"applied": True, **_view(task)}
    token = lease
    task = await _dispatcher(node).ask(
        lambda r: Report(task_id, token, status, r, result=result, error=error, progress=progress)
    )
    return {"applied": True, **_view(task)}


@webhook_routes.post(
    "/webhook",
    summary="Signed task updates from external systems",
    description=WEBHOOK_DESCRIPTION,
    request_schema={
        "type": "object",
        "properties": {
            "event": {"type": "string"},
            "task_id": {"type": "string"},
            "status": {"type": "string"},
            "data": {"type": "object"},
            "lease_token": {"type": "string"},
        },
    },
    response_schema={
        "type": "object",
        "properties": {
            "accepted": {"type": "boolean"},
            "applied": {"type": "boolean"},
            "task_id": {"type": "string"},
            "status": {"type": "string"},
            "scheme": {"type": "string"},
            "delivery_id": {"type": ["string", "null"]},
        },
    },
    responses={
        200: "Verified (and applied, when it is a task event)",
        400: "Malformed signature header or JSON",
        401: "Missing, wrong or stale signature",
        404: "Unknown task",
        409: "Replayed delivery (webhook-replayed), illegal transition (illegal-transition) or stale lease"
        " (stale-lease)",
        413: "Body too large",
        415: "Body is not JSON",
        422: "Missing or invalid field",
        429: "Too many webhooks from this client",
    },
)
async def receive_webhook() -> Response:
    """Verify, then apply (the Quart route; `WebhookEndpoint` serves POST /webhook without Quart)."""
    node = current_node()
    if node.security is None:  # before reading the body, as when the rate limit was its own ask
        raise ServiceUnavailable("The security service is not running.")
    raw = await _raw_body()
    delivery = read_delivery(request.scope["headers"], client_address())
    return json_response(await handle_delivery(node, delivery, raw))


async def handle_delivery(node: Node, delivery: Delivery, raw: bytes) -> dict[str, Any]:
    """Verify `raw` (rate limit, signature, replay), parse and apply it; the answer document or ApiError.

    The verdict comes before the replay keys are durable: the change is applied while they commit (both
    usually ride one group commit), and no answer goes out before they are.
    """
    durable = Receipt()
    verdict = await _verify(node, delivery.signature_headers, raw, delivery.client, durable)
    if not verdict.ok:
        raise _verification_error(verdict)
    try:
        mimetype = delivery.mimetype
        if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
            raise UnsupportedMediaType(f"Expected Content-Type application/json, got {mimetype!r}.")
        body = parse_json_object(raw)
        event = _optional_str(body, "event", "type", 128) or delivery.github_event
        outcome = await _apply(node, body, event, verdict)
    finally:
        # Errors too: a delivery refused after verification (404, 409, 422) is still spent, as before.
        await durable.wait()
    return {"accepted": True, "scheme": verdict.scheme, "delivery_id": verdict.delivery_id, **outcome}


class WebhookEndpoint:
    """POST /webhook as a raw ASGI handler that the `Edge` calls directly, skipping Quart's request
    machinery (request object, contexts, hooks: ~0.1 ms a delivery). Same answers as the Quart route:
    body limit (413) and timeout (408) as Quart applies them, problem+json errors through the one error
    table, the JSON answer through `json_bytes`."""

    quart_free = True  # never hands the request to Quart: the Edge sends its answer without a shield

    def __init__(self, node: Node, *, max_body: int, body_timeout: float) -> None:
        self.node = node
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request (the Edge has set the request id and counts and logs the answer)."""
        try:
            if self.node.security is None:
                raise ServiceUnavailable("The security service is not running.")
            raw = await read_body(scope, receive, limit=self.max_body, time_limit=self.body_timeout)
            delivery = read_delivery(scope["headers"], scope_client(scope))
            answer = await handle_delivery(self.node, delivery, raw)
        except Exception as exc:  # what Quart's error handler does for the route (app._handle_error)
            await send_problem(send, scope, api_error_for(exc, scope))
            return
        await send_json(send, 200, json_bytes(answer))
