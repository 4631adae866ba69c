"""Worker batches, shared by HTTP (`POST /cores/{core}/claims`, `/tasks/heartbeats`, `/tasks/reports`)
and `WS /ws/dispatch` (`claim` with `max`, `heartbeat_batch`, `report_batch`).

A batch body carries a list of items. Each item is read and checked on its own: an item that is not valid
gets its own problem document in its place and the others still go to the dispatcher, which applies them
one by one (each lease-checked, durable, evented) in one write and answers after the commit. Answers are
`{"results": [{"ok": true, ...} | {"ok": false, "error": <problem>}, ...]}` in item order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from actors.dispatcher.messages import (
    DispatcherError,
    DispatcherMsg,
    HeartbeatAck,
    HeartbeatItem,
    HeartbeatMany,
    ReportItem,
    ReportMany,
    ReportStatus,
    TaskView,
    build_heartbeat_item,
    build_report_item,
)
from orch.http.body import JsonObject
from orch.http.problems import ApiError, InternalError, ValidationFailed, problem_body, to_api_error
from orch.http.task_input import MAX_ERROR_LEN, read_status_change
from orch.http.task_views import iso, task_json
from orch.logs import correlation_id
from runtime import ActorRef

__all__ = [
    "DEFAULT_CLAIM_MAX",
    "MAX_WORKER_BATCH",
    "heartbeat_many",
    "item_results_schema",
    "plain_heartbeat",
    "plain_report",
    "read_heartbeat_item",
    "read_items",
    "read_report_item",
    "report_many",
]

MAX_WORKER_BATCH = 1000  # the dispatcher's default `max_worker_batch`
DEFAULT_CLAIM_MAX = 10

T = TypeVar("T")


def read_items(
    items: list[Any] | None,
    key: str,
    read: Callable[[JsonObject], T],
    plain: Callable[[dict[str, Any]], T | None] = lambda item: None,
) -> list[T | ApiError]:
    """Read each item of the `key` list (`plain` first, then `read` for what it did not take); a bad
    item yields its error in its place."""
    if not items:
        raise ValidationFailed(key, "is required and must be a non-empty array")
    out: list[T | ApiError] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            out.append(ValidationFailed(f"{key}.{index}", "must be an object"))
            continue
        fast = plain(item)
        if fast is not None:
            out.append(fast)
            continue
        try:
            out.append(read(JsonObject(item, prefix=f"{key}.{index}.")))
        except ApiError as error:
            out.append(error)
    return out


_PLAIN_HEARTBEAT = frozenset({"task_id", "lease_token"})
_PLAIN_REPORT = frozenset({"task_id", "lease_token", "status", "result", "error"})
_REPORT_STATUSES = {s.value: s for s in ReportStatus}


def plain_heartbeat(item: dict[str, Any]) -> HeartbeatItem | None:
    """The common heartbeat (`task_id` and `lease_token` only, both well-formed) without the general
    reader (~10x cheaper); None sends the item to `read_heartbeat_item`, which names what is wrong."""
    task_id, token = item.get("task_id"), item.get("lease_token")
    # The string checks inline (a helper call per field was a fifth of the item's cost).
    if (
        item.keys() <= _PLAIN_HEARTBEAT
        and type(task_id) is str
        and 0 < len(task_id) <= 200
        and type(token) is str
        and 0 < len(token) <= 256
    ):
        return build_heartbeat_item(task_id, token, None, None)
    return None


def plain_report(item: dict[str, Any]) -> ReportItem | None:
    """The common report (`task_id`, `lease_token`, a worker's `status`, optional `result` / `error`)
    without the general reader; None sends the item to `read_report_item`, which names what is wrong."""
    task_id, token = item.get("task_id"), item.get("lease_token")
    status = _REPORT_STATUSES.get(item.get("status"))  # type: ignore[arg-type]
    result, error = item.get("result"), item.get("error")
    if (
        item.keys() <= _PLAIN_REPORT
        and status is not None
        and type(task_id) is str
        and 0 < len(task_id) <= 200
        and type(token) is str
        and 0 < len(token) <= 256
        and (result is None or type(result) is dict)
        and (error is None or (type(error) is str and len(error) <= MAX_ERROR_LEN))
    ):
        return build_report_item(
            task_id, token, status, None if result is None else dict(result), error, None
        )
    return None


def read_heartbeat_item(obj: JsonObject, *, min_lease: float, max_lease: float) -> HeartbeatItem:
    """`{"task_id", "lease_token", "progress"?, "lease"?}`."""
    task_id = obj.req_str("task_id", aliases=("taskId",), max_len=200)
    token = obj.req_str("lease_token", aliases=("leaseToken",), max_len=256)
    progress = obj.opt_obj("progress")
    lease = obj.opt_number("lease", min=min_lease, max=max_lease)
    obj.reject_unknown()
    return HeartbeatItem(task_id, token, dict(progress.data) if progress is not None else None, lease)


def read_report_item(obj: JsonObject) -> ReportItem:
    """`{"task_id", "lease_token", "status", "result"?, "error"?, "progress"?}` (a holder's report)."""
    task_id = obj.req_str("task_id", aliases=("taskId",), max_len=200)
    change = read_status_change(obj, require_lease=True)
    assert change.lease_token is not None  # required above
    return ReportItem(
        task_id, change.lease_token, change.report_status, change.result, change.error, change.progress
    )


async def heartbeat_many(
    ref: ActorRef[DispatcherMsg], parsed: list[HeartbeatItem | ApiError], instance: str
) -> dict[str, Any]:
    """Send the valid items as one `HeartbeatMany`; the `results` answer."""

    async def ask(items: list[HeartbeatItem]) -> Sequence[HeartbeatAck | DispatcherError]:
        answers: tuple[HeartbeatAck | DispatcherError, ...] = await ref.ask(
            lambda reply: HeartbeatMany(items, reply)
        )
        return answers

    return await _many(parsed, ask, _heartbeat_ok, instance)


async def report_many(
    ref: ActorRef[DispatcherMsg], parsed: list[ReportItem | ApiError], instance: str
) -> dict[str, Any]:
    """Send the valid items as one `ReportMany`; the `results` answer (each with the task as it is now)."""

    async def ask(items: list[ReportItem]) -> Sequence[TaskView | DispatcherError]:
        answers: tuple[TaskView | DispatcherError, ...] = await ref.ask(
            lambda reply: ReportMany(items, reply)
        )
        return answers

    return await _many(parsed, ask, _report_ok, instance)


def _heartbeat_ok(ack: HeartbeatAck) -> dict[str, Any]:
    # `heartbeat_json`'s members after "ok", built in place (no merge of a second dict per item).
    return {
        "ok": True,
        "task_id": ack.task_id,
        "lease_expires_at": iso(ack.lease_expires_at),
        "cancel_requested": ack.cancel_requested,
    }


def _report_ok(view: TaskView) -> dict[str, Any]:
    return {"ok": True, "task": task_json(view)}


async def _many(
    parsed: list[T | ApiError],
    ask: Callable[[list[T]], Any],
    ok: Callable[[Any], dict[str, Any]],
    instance: str,
) -> dict[str, Any]:
    valid = [item for item in parsed if not isinstance(item, ApiError)]
    answers: Sequence[Any] = await ask(valid) if valid else ()
    if len(valid) == len(parsed):  # every item was read: the answers are the outcomes, in item order
        outcomes = answers
    else:
        written = iter(answers)
        outcomes = [item if isinstance(item, ApiError) else next(written) for item in parsed]
    request_id = correlation_id.get()
    results: list[dict[str, Any]] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            error = to_api_error(outcome) or InternalError()
            results.append(
                {"ok": False, "error": problem_body(error, instance=instance, request_id=request_id)}
            )
        else:
            results.append(ok(outcome))
    return {"results": results}


def item_results_schema(ok_item: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI schema of a `results` answer whose successful items look like `ok_item`."""
    failed = {
        "type": "object",
        "properties": {"ok": {"const": False}, "error": {"type": "object", "description": "problem+json"}},
        "required": ["ok", "error"],
    }
    return {
        "type": "object",
        "properties": {"results": {"type": "array", "items": {"oneOf": [ok_item, failed]}}},
        "required": ["results"],
    }
