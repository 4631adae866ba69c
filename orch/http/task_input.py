"""Reading task requests from JSON bodies: dispatch specs (single and batch) and status reports.

Field names are snake_case; the seed's camelCase spellings (`coreId`, `maxAttempts`, `notBefore`,
`idempotencyKey`, `leaseToken`) are accepted as aliases. Unknown members are refused (422), so a typo
never silently drops an option.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from actors.dispatcher.messages import (
    PRIORITY_MAX,
    PRIORITY_MIN,
    ReportStatus,
    TaskSpec,
    build_task_spec,
)
from orch.http.body import JsonObject
from orch.http.problems import ValidationFailed

__all__ = [
    "CORE_PATTERN",
    "DEFAULT_STAY_WAIT",
    "DISPATCH_SCHEMA",
    "MAX_STAY_WAIT",
    "REPORT_SCHEMA",
    "StatusChange",
    "read_dispatch",
    "read_status_change",
    "read_task_spec",
    "read_task_specs",
]

CORE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}"
MAX_TIMEOUT = 30 * 86_400.0
MAX_DELAY = 365 * 86_400.0
DEFAULT_STAY_WAIT = 300.0
MAX_STAY_WAIT = 3600.0
MAX_ERROR_LEN = 16_384


def read_task_spec(body: JsonObject, *, idempotency_key: str | None = None) -> TaskSpec:
    """One task spec from `body` (the dispatch fields; `stay`/`wait` are the caller's to read)."""
    core_id = body.req_str("core_id", aliases=("coreId",), max_len=200, pattern=CORE_PATTERN)
    priority = body.opt_int("priority", default=0, min=PRIORITY_MIN, max=PRIORITY_MAX)
    timeout = body.opt_number("timeout", min=0.001, max=MAX_TIMEOUT)
    metadata = body.opt_obj("metadata")
    if metadata is not None and len(metadata.data) > 100:
        raise body.fail("metadata", f"must have at most 100 members, got {len(metadata.data)}")
    max_attempts = body.opt_int("max_attempts", default=3, aliases=("maxAttempts",), min=1, max=1000)
    key = body.opt_str("idempotency_key", aliases=("idempotencyKey",), min_len=1, max_len=200)
    if key is not None and idempotency_key is not None and key != idempotency_key:
        raise body.fail("idempotency_key", "disagrees with the Idempotency-Key header; send one")
    return TaskSpec(
        core_id=core_id,
        priority=priority or 0,
        timeout=timeout,
        metadata=dict(metadata.data) if metadata is not None else {},
        stay=body.opt_bool("stay"),
        idempotency_key=key or idempotency_key,
        max_attempts=max_attempts or 3,
        not_before=_not_before(body),
    )


def read_dispatch(body: JsonObject, *, idempotency_key: str | None = None) -> tuple[TaskSpec, float]:
    """A single dispatch: the spec (`read_task_spec`, with the header's key) and `wait` (for `stay`).

    Unknown members are refused. A plain body takes the one-pass check, any other the full reader.
    """
    try:
        spec = _plain_spec(body.data, _DISPATCH_FIELDS, idempotency_key)
        wait = _plain_number(body.data.get("wait"), 0.001, MAX_STAY_WAIT)
    except _NotPlain:
        spec = read_task_spec(body, idempotency_key=idempotency_key)
        wait = body.opt_number("wait", min=0.001, max=MAX_STAY_WAIT)
        body.reject_unknown()
    return spec, DEFAULT_STAY_WAIT if wait is None else wait


def read_task_specs(items: Sequence[Any], *, field: str = "tasks") -> list[TaskSpec]:
    """The specs of a batch's items, with `read_task_spec`'s rules; errors name the item (`tasks.3.core_id`).

    A well-formed item in the plain spelling takes a one-pass check; any other item (an alias, a bad or
    unknown member, an ISO `not_before`) goes through `read_task_spec`, which accepts it or says why not.
    """
    specs = []
    for index, item in enumerate(items):
        try:
            specs.append(_plain_spec(item))
        except _NotPlain:
            specs.append(_checked_spec(item, f"{field}.{index}"))
    return specs


def _checked_spec(item: Any, name: str) -> TaskSpec:
    if not isinstance(item, dict):
        raise ValidationFailed(name, "must be an object")
    body = JsonObject(item, prefix=f"{name}.")
    spec = read_task_spec(body)
    body.reject_unknown()
    return spec


class _NotPlain(Exception):
    """The item needs `read_task_spec` (to be accepted in another spelling, or refused with a reason)."""


_PLAIN_FIELDS = frozenset(
    {
        "core_id",
        "priority",
        "timeout",
        "metadata",
        "max_attempts",
        "idempotency_key",
        "stay",
        "delay",
        "not_before",
    }
)
_DISPATCH_FIELDS = _PLAIN_FIELDS | {"wait"}
_CORE_MATCH = re.compile(CORE_PATTERN).fullmatch
_FLOAT_MAX = 1.7976931348623157e308


def _plain_spec(item: Any, fields: frozenset[str] = _PLAIN_FIELDS, header_key: str | None = None) -> TaskSpec:
    """`read_task_spec` of a valid item without aliases, in one pass; _NotPlain for anything else."""
    if type(item) is not dict or not fields.issuperset(item):
        raise _NotPlain
    get = item.get
    core_id = get("core_id")
    if type(core_id) is not str or (core_id not in _valid_cores and not _valid_core(core_id)):
        raise _NotPlain
    metadata = get("metadata")
    if metadata is not None and (type(metadata) is not dict or len(metadata) > 100):
        raise _NotPlain
    key = get("idempotency_key")
    if key is None:
        key = header_key
    elif type(key) is not str or not 0 < len(key) <= 200 or (header_key is not None and key != header_key):
        raise _NotPlain
    stay = get("stay")
    if stay is not None and type(stay) is not bool:
        raise _NotPlain
    # Absent members skip their checker: a bulk client sends few of them, and calls add up per item.
    priority = get("priority")
    timeout = get("timeout")
    attempts = get("max_attempts")
    delay, at = get("delay"), get("not_before")
    return build_task_spec(
        core_id,
        0 if priority is None else _plain_int(priority, 0, PRIORITY_MIN, PRIORITY_MAX),
        None if timeout is None else _plain_number(timeout, 0.001, MAX_TIMEOUT),
        {} if metadata is None else dict(metadata),
        stay is True,
        key,
        3 if attempts is None else _plain_int(attempts, 3, 1, 1000),
        None if delay is None and at is None else _plain_not_before(delay, at),
    )


_valid_cores: set[str] = set()
"""Core ids seen to match CORE_PATTERN (a bulk client uses a few; the match was the costliest check)."""


def _valid_core(core_id: str) -> bool:
    if _CORE_MATCH(core_id) is None:
        return False
    if len(_valid_cores) >= 4096:
        _valid_cores.clear()
    _valid_cores.add(core_id)
    return True


def _plain_int(value: Any, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if type(value) is not int or not low <= value <= high:
        raise _NotPlain
    return value


def _plain_number(value: Any, low: float, high: float) -> float | None:
    if value is None:
        return None
    kind = type(value)
    if (kind is int or (kind is float and math.isfinite(value))) and low <= value <= high:
        return float(value)
    raise _NotPlain


def _plain_not_before(delay: Any, at: Any) -> float | None:
    if delay is not None:
        seconds = _plain_number(delay, 0.0, MAX_DELAY)
        if at is not None or seconds is None:
            raise _NotPlain
        return time.time() + seconds
    return _plain_number(at, 0.0, _FLOAT_MAX)  # an ISO string is not plain


def _not_before(body: JsonObject) -> float | None:
    delay = body.opt_number("delay", min=0.0, max=MAX_DELAY)
    raw = body.data.get("not_before", body.data.get("notBefore"))
    if isinstance(raw, str):
        text = body.opt_str("not_before", aliases=("notBefore",), max_len=64)
        at = _parse_time(body, text) if text is not None else None
    else:
        at = body.opt_number("not_before", aliases=("notBefore",), min=0.0)
    if delay is not None and at is not None:
        raise body.fail("delay", "send either delay or not_before, not both")
    if delay is not None:
        return time.time() + delay
    return at


def _parse_time(body: JsonObject, text: str) -> float:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise body.fail("not_before", "must be unix seconds or an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise body.fail("not_before", "must carry a UTC offset (e.g. 2026-01-01T12:00:00+00:00)")
    return max(0.0, parsed.timestamp())


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A status change read from a body: a worker report (with `lease_token`) or an operator's request."""

    status: str
    lease_token: str | None
    result: dict[str, Any] | None
    error: str | None
    progress: dict[str, Any] | None
    reason: str | None
    reset_attempts: bool

    @property
    def report_status(self) -> ReportStatus:
        """The report's status (valid only when `status` is one a worker may report)."""
        return ReportStatus(self.status)


_STATUSES = (*[s.value for s in ReportStatus], "queued", "timed_out", "dead")
OPERATOR_ONLY = frozenset({"queued", "timed_out", "dead"})
"""Statuses only an operator sets (without a lease token); a worker never reports them."""


def read_status_change(body: JsonObject, *, require_lease: bool) -> StatusChange:
    """Read `status` plus the report or operator fields; refuse combinations that cannot apply."""
    status = body.req_str("status", choices=_STATUSES)
    token = body.opt_str("lease_token", aliases=("leaseToken",), min_len=1, max_len=256)
    result = body.opt_obj("result")
    progress = body.opt_obj("progress")
    change = StatusChange(
        status=status,
        lease_token=token,
        result=dict(result.data) if result is not None else None,
        error=body.opt_str("error", max_len=MAX_ERROR_LEN),
        progress=dict(progress.data) if progress is not None else None,
        reason=body.opt_str("reason", min_len=1, max_len=1024),
        reset_attempts=body.opt_bool("reset_attempts", default=True),
    )
    body.reject_unknown()
    if token is None and require_lease:
        raise ValidationFailed("lease_token", f"is required to report {status} (only the holder may)")
    if token is not None and status in OPERATOR_ONLY:
        raise ValidationFailed("status", f"{status} is an operator's change; send it without lease_token")
    return change


_TIME = {"oneOf": [{"type": "number", "minimum": 0}, {"type": "string", "format": "date-time"}]}
TASK_FIELDS: dict[str, Any] = {
    "core_id": {"type": "string", "pattern": f"^{CORE_PATTERN}$", "description": "alias: coreId"},
    "priority": {"type": "integer", "minimum": PRIORITY_MIN, "maximum": PRIORITY_MAX, "default": 0},
    "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "seconds per attempt, from claim"},
    "metadata": {"type": "object", "maxProperties": 100},
    "max_attempts": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 3},
    "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200},
    "not_before": {**_TIME, "description": "first claim not before (unix seconds or ISO 8601)"},
    "delay": {"type": "number", "minimum": 0, "description": "seconds from now (instead of not_before)"},
    "stay": {"type": "boolean", "default": False},
}
DISPATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **TASK_FIELDS,
        "wait": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": MAX_STAY_WAIT,
            "default": DEFAULT_STAY_WAIT,
            "description": "with stay: seconds to keep the request open at most",
        },
    },
    "required": ["core_id"],
    "additionalProperties": False,
}
REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"enum": list(_STATUSES)},
        "lease_token": {
            "type": "string",
            "description": "the claim's token (alias: leaseToken); without it the change is an operator's",
        },
        "result": {"type": "object"},
        "error": {"type": "string", "maxLength": MAX_ERROR_LEN},
        "progress": {"type": "object"},
        "reason": {"type": "string"},
        "reset_attempts": {"type": "boolean", "default": True},
    },
    "required": ["status"],
    "additionalProperties": False,
}
