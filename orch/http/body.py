"""Strict JSON bodies: parse (400/413/415) and read typed fields (422 naming the field).

    body = await read_json_object()
    core = body.req_str("core_id", aliases=("coreId",), max_len=128)
    priority = body.opt_int("priority", default=0, min=-1000, max=1000)
    body.reject_unknown()      # any member not read above -> 422

Types are strict: "5" is not an int, true is not an int, 1.5 is not an int, NaN/Infinity are not JSON.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from quart import request
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout

from orch.http.edge import scope_header
from orch.http.problems import (
    MalformedJson,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from orch.http.problems import RequestTimeout as RequestTimeoutError

__all__ = ["JsonObject", "json_object_of", "parse_json_object", "read_json_object", "request_header"]

_MAX_DEPTH = 32


async def read_json_object(*, allow_empty: bool = False) -> JsonObject:
    """Read the current request's body as a JSON object (empty body -> {} if `allow_empty`)."""
    try:
        raw = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    except RequestEntityTooLarge:
        raise PayloadTooLarge("The request body exceeds the configured limit.") from None
    except RequestTimeout:
        raise RequestTimeoutError("The request body did not arrive in time.") from None
    return json_object_of(raw, request_header(b"content-type"), allow_empty=allow_empty)


def json_object_of(raw: bytes, content_type: str | None, *, allow_empty: bool = False) -> JsonObject:
    """A request body `raw` sent with `content_type` as a JSON object: 415 for a non-JSON media type,
    else `parse_json_object`'s rules (an empty body is {} if `allow_empty`)."""
    if not raw and allow_empty:
        return JsonObject({})
    # What werkzeug's `request.mimetype` gives: the part before any parameters, lower case.
    mimetype = content_type.partition(";")[0].strip().lower() if content_type else ""
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"Expected Content-Type application/json, got {mimetype!r}.")
    return parse_json_object(raw)


def request_header(name: bytes) -> str | None:
    """The current request's first `name` header (lower-case bytes), from the ASGI scope.

    `request.headers.get` raises and catches a KeyError inside werkzeug for every absent name.
    """
    return scope_header(request.scope, name)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member {key!r}")
        result[key] = value
    return result


def _too_deep(value: dict[str, Any]) -> bool:
    """True when containers nest more than _MAX_DEPTH levels (empty ones count), level by level."""
    level: list[Any] = [value]
    depth = 1
    while level:
        if depth > _MAX_DEPTH:
            return True
        below: list[Any] = []
        for container in level:
            for child in container.values() if type(container) is dict else container:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level = below
        depth += 1
    return False


_BRACKETS = b"[]{}"
_TO_SHAPE = bytes.maketrans(_BRACKETS, b"()()")
_NOT_SHAPE = bytes(c for c in range(256) if c not in b'"[]{}')


def _deeper_than_limit(raw: bytes, value: dict[str, Any]) -> bool:
    """`_too_deep(value)`, read from the text of `raw` (its valid JSON) with byte operations when it can.

    Without backslashes every quote opens or closes a string, so deleting all but quotes and brackets
    leaves `""` for each string free of brackets; when no quote is left, what remains is the nesting
    itself, `()` for every container, and each pass of removing `()` takes exactly one level off.
    Walking the parsed value instead was most of the parse of a 1,000-task batch.
    """
    if b"\\" in raw:
        return _too_deep(value)
    shape = raw.translate(_TO_SHAPE, _NOT_SHAPE).replace(b'""', b"")
    if b'"' in shape:  # a string holds a bracket: the walk decides
        return _too_deep(value)
    for _ in range(_MAX_DEPTH):
        if not shape:
            return False
        shape = shape.replace(b"()", b"")
    return bool(shape)


_DIGIT_TO_NINE = bytes.maketrans(b"0123456789", b"9" * 10)
_LONG_NUMBER = b"9" * 19


def _fast_parse(raw: bytes) -> Any:
    """orjson's parse when it provably equals the strict stdlib parse below, else None.

    orjson keeps the last of duplicate members and turns integers beyond 64 bits into floats; both are
    ruled out here: 19+ digit runs go the slow way, and without \\u escapes (which could hide a colon)
    every colon of `raw` is a member separator or a character of a string, so `raw` has as many colons
    as its re-encoding exactly when no member was dropped.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None  # the slow path finds the same fault and words it as before
    if type(value) is not dict or b"\\u" in raw:
        return None
    if _LONG_NUMBER in raw.translate(_DIGIT_TO_NINE) and _long_number_outside_strings(raw):
        return None
    if raw.count(b":") != orjson.dumps(value).count(b":"):
        return None  # a duplicate member: the slow path names it
    return value


def _long_number_outside_strings(raw: bytes) -> bool:
    """True unless every 19+ digit run of `raw` (free of backslashes) lies inside a string.

    Hex task ids and lease tokens hold such a run often enough to send ~8 % of 50-item worker batches
    the slow way. Without backslashes every quote opens or closes a string, so the even pieces of a
    split at quotes are the text outside strings.
    """
    if b"\\" in raw:
        return True
    outside = b"".join(raw.split(b'"')[::2])
    return _LONG_NUMBER in outside.translate(_DIGIT_TO_NINE)


def parse_json_object(raw: bytes) -> JsonObject:
    """Parse `raw` strictly into a JsonObject; raise MalformedJson (400) or ValidationFailed (422)."""
    value = _fast_parse(raw) if raw else None
    if value is None:
        value = _strict_parse(raw)
    if not isinstance(value, dict):
        raise ValidationFailed("", f"the body must be a JSON object, got {_kind(value)}")
    if raw.count(b"[") + raw.count(b"{") > _MAX_DEPTH and _deeper_than_limit(raw, value):
        raise MalformedJson(f"JSON nested deeper than {_MAX_DEPTH} levels.")
    return JsonObject(value)


def _strict_parse(raw: bytes) -> Any:
    """The stdlib parse: no NaN/Infinity, no duplicate members, UTF-8 only; faults as MalformedJson."""
    if not raw:
        raise MalformedJson("The request body is empty; a JSON object is required.")
    try:
        return json.loads(
            raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_no_duplicates
        )
    except UnicodeDecodeError:
        raise MalformedJson("The request body is not valid UTF-8.") from None
    except json.JSONDecodeError as exc:
        raise MalformedJson(f"Invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.") from None
    except (ValueError, RecursionError) as exc:
        raise MalformedJson(f"Invalid JSON: {exc}.") from None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


_MISSING: Any = object()
_FLOAT_INT_LIMIT = int(1.7976931348623157e308)


class JsonObject:
    """A parsed JSON object with typed, strict accessors that name the field in every error."""

    def __init__(self, data: Mapping[str, Any], *, prefix: str = "") -> None:
        self.data = data
        self._prefix = prefix
        self._read: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self._prefix}{key}"

    def _fail(self, key: str, problem: str) -> ValidationFailed:
        return ValidationFailed(self._name(key), problem)

    def fail(self, key: str, problem: str) -> ValidationFailed:
        """The 422 for member `key` of this object, named with its path (`tasks.3.delay`); raise it."""
        return self._fail(key, problem)

    def _lookup(self, key: str, aliases: Iterable[str]) -> tuple[str, Any]:
        """The (name used, value) for `key` or one alias; _MISSING when absent or null."""
        found = [(k, self.data[k]) for k in (key, *aliases) if k in self.data]
        self._read.update([key, *aliases])
        present = [(k, v) for k, v in found if v is not None]
        if len(present) > 1 and any(v != present[0][1] for _, v in present):
            names = " and ".join(k for k, _ in present)
            raise self._fail(key, f"{names} disagree; send only one")
        return present[0] if present else (key, _MISSING)

    def _require(self, key: str, aliases: Iterable[str]) -> tuple[str, Any]:
        name, value = self._lookup(key, aliases)
        if value is _MISSING:
            raise self._fail(key, "is required")
        return name, value

    def has(self, key: str) -> bool:
        """True when `key` is present and not null."""
        return self.data.get(key) is not None

    # -- strings -------------------------------------------------------------------------------------------
    def req_str(
        self,
        key: str,
        *,
        aliases: Iterable[str] = (),
        min_len: int = 1,
        max_len: int = 1024,
        pattern: str | None = None,
        choices: Iterable[str] | None = None,
    ) -> str:
        """A required string."""
        name, value = self._require(key, aliases)
        return self._check_str(name, value, min_len, max_len, pattern, choices)

    def opt_str(
        self,
        key: str,
        *,
        default: str | None = None,
        aliases: Iterable[str] = (),
        min_len: int = 0,
        max_len: int = 1024,
        pattern: str | None = None,
        choices: Iterable[str] | None = None,
    ) -> str | None:
        """An optional string (absent or null -> `default`)."""
        name, value = self._lookup(key, aliases)
        if value is _MISSING:
            return default
        return self._check_str(name, value, min_len, max_len, pattern, choices)

    def _check_str(
        self,
        name: str,
        value: Any,
        min_len: int,
        max_len: int,
        pattern: str | None,
        choices: Iterable[str] | None,
    ) -> str:
        if not isinstance(value, str):
            raise self._fail(name, f"must be a string, got {_kind(value)}")
        if not min_len <= len(value) <= max_len:
            raise self._fail(name, f"must be {min_len}..{max_len} characters long, got {len(value)}")
        if pattern is not None and re.fullmatch(pattern, value) is None:
            raise self._fail(name, f"must match {pattern}")
        allowed = list(choices) if choices is not None else None
        if allowed is not None and value not in allowed:
            raise self._fail(name, f"must be one of {', '.join(allowed)}")
        return value

    # -- numbers -------------------------------------------------------------------------------------------
    def req_int(
        self, key: str, *, aliases: Iterable[str] = (), min: int | None = None, max: int | None = None
    ) -> int:
        """A required integer (booleans and 1.0 are refused)."""
        name, value = self._require(key, aliases)
        return self._check_int(name, value, min, max)

    def opt_int(
        self,
        key: str,
        *,
        default: int | None = None,
        aliases: Iterable[str] = (),
        min: int | None = None,
        max: int | None = None,
    ) -> int | None:
        """An optional integer (absent or null -> `default`)."""
        name, value = self._lookup(key, aliases)
        return default if value is _MISSING else self._check_int(name, value, min, max)

    def _check_int(self, name: str, value: Any, lo: int | None, hi: int | None) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._fail(name, f"must be an integer, got {_kind(value)}")
        self._check_range(name, value, lo, hi)
        return value

    def req_number(
        self,
        key: str,
        *,
        aliases: Iterable[str] = (),
        min: float | None = None,
        max: float | None = None,
    ) -> float:
        """A required finite number (int or float)."""
        name, value = self._require(key, aliases)
        return self._check_number(name, value, min, max)

    def opt_number(
        self,
        key: str,
        *,
        default: float | None = None,
        aliases: Iterable[str] = (),
        min: float | None = None,
        max: float | None = None,
    ) -> float | None:
        """An optional finite number (absent or null -> `default`)."""
        name, value = self._lookup(key, aliases)
        return default if value is _MISSING else self._check_number(name, value, min, max)

    def _check_number(self, name: str, value: Any, lo: float | None, hi: float | None) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self._fail(name, f"must be a number, got {_kind(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self._fail(name, f"must be a number, got {_kind(value)}")
        self._check_range(name, value, lo, hi)
        if isinstance(value, int) and abs(value) > _FLOAT_INT_LIMIT:  # float() would overflow
            raise self._fail(name, "must be a finite number, this one is too large")
        return float(value)

    def _check_range(self, name: str, value: float, lo: float | None, hi: float | None) -> None:
        if lo is not None and value < lo:
            raise self._fail(name, f"must be >= {lo}, got {value}")
        if hi is not None and value > hi:
            raise self._fail(name, f"must be <= {hi}, got {value}")

    # -- booleans, objects, arrays -------------------------------------------------------------------------
    def opt_bool(self, key: str, *, default: bool = False, aliases: Iterable[str] = ()) -> bool:
        """An optional boolean (absent or null -> `default`); "true" and 1 are refused."""
        name, value = self._lookup(key, aliases)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            raise self._fail(name, f"must be a boolean, got {_kind(value)}")
        return value

    def opt_obj(self, key: str, *, aliases: Iterable[str] = ()) -> JsonObject | None:
        """An optional nested object, whose own errors are named `key.member`."""
        name, value = self._lookup(key, aliases)
        if value is _MISSING:
            return None
        if not isinstance(value, dict):
            raise self._fail(name, f"must be an object, got {_kind(value)}")
        return JsonObject(value, prefix=f"{self._name(name)}.")

    def opt_list(self, key: str, *, aliases: Iterable[str] = (), max_items: int = 1000) -> list[Any] | None:
        """An optional array of at most `max_items` items (items are the caller's to check)."""
        name, value = self._lookup(key, aliases)
        if value is _MISSING:
            return None
        if not isinstance(value, list):
            raise self._fail(name, f"must be an array, got {_kind(value)}")
        if len(value) > max_items:
            raise self._fail(name, f"must have at most {max_items} items, got {len(value)}")
        return value

    def opt_str_map(
        self, key: str, *, aliases: Iterable[str] = (), max_items: int = 64, max_len: int = 1024
    ) -> dict[str, str] | None:
        """An optional object of string -> string (labels, metadata)."""
        obj = self.opt_obj(key, aliases=aliases)
        if obj is None:
            return None
        if len(obj.data) > max_items:
            raise self._fail(key, f"must have at most {max_items} members, got {len(obj.data)}")
        return {k: obj.req_str(k, min_len=0, max_len=max_len) for k in obj.data}

    def reject_unknown(self, *allowed: str) -> None:
        """Refuse members that were neither read nor listed in `allowed` (catches typos)."""
        for key in self.data:
            if key not in self._read and key not in allowed:
                raise self._fail(key, "is not a known member")
