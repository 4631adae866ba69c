"""Structured JSON-lines logging with a correlation id and a redaction guard.

Every line is one JSON object: timestamp (UTC, ISO 8601), level, logger, correlation_id (the request id of
the HTTP request being served, from a contextvar), message, plus any `extra={...}` context.

The guard runs on every line: values under secret-looking keys (password, token, secret, authorization,
...) become "[REDACTED]", bearer tokens / JWTs / basic credentials / `password=...` pairs inside strings are
masked, and every value registered with `register_secret` (the node registers its configured secrets) is
replaced wherever it appears.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

__all__ = [
    "REDACTED",
    "JsonFormatter",
    "configure_logging",
    "correlation_id",
    "redact",
    "register_secret",
    "use_correlation_id",
]

REDACTED = "[REDACTED]"

correlation_id: ContextVar[str | None] = ContextVar("orch_correlation_id", default=None)

_SECRET_KEY = re.compile(
    r"passw(or)?d|passphrase|^pass$|secret|token|authori[sz]ation|cookie|api[-_]?key|credential|signature"
    r"|private[-_]?key|session",
    re.IGNORECASE,
)
_SECRET_IN_TEXT = [
    # "Bearer abc", "Basic abc"
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\1 " + REDACTED),
    # JWT-looking strings (three base64url parts, header starting with {"...)
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    # password=..., "token": "..." and friends in free text
    (
        re.compile(
            r"""(?P<k>(pass(word)?|secret|token|api[-_]?key)["']?\s*[:=]\s*["']?)[^\s"',;&]+""",
            re.IGNORECASE,
        ),
        r"\g<k>" + REDACTED,
    ),
    # Standard Webhooks secrets
    (re.compile(r"\bwh(sec|sk)_[A-Za-z0-9+/=]+"), REDACTED),
]

_registered: tuple[str, ...] = ()  # replaced, never mutated: a reader iterates a consistent snapshot
_registered_lock = threading.Lock()
# Scrubbed text by input text, for short strings (an access line's method, route and message repeat).
# Replaced by a new dict whenever a secret is registered: a thread that scrubbed with the old set can
# only ever write into the discarded dict.
_scrubbed: dict[str, str] = {}
_SCRUB_CACHE_MAX = 4096
_SCRUB_CACHE_LEN = 256
_MIN_REGISTERED_LEN = 4  # registering "a" would mangle every line

# Attributes every LogRecord has; anything else came from `extra=` and is context.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def register_secret(value: str | bytes | None) -> None:
    """Never let `value` appear in a log line (it is replaced by [REDACTED] wherever it occurs)."""
    if value is None:
        return
    global _registered, _scrubbed
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if len(text) >= _MIN_REGISTERED_LEN:
        with _registered_lock:
            if text not in _registered:
                _registered = (*_registered, text)
            _scrubbed = {}  # after the new set is visible (see _scrubbed)


# Cheap pre-check: the substitutions above only ever match text containing one of these.
_TRIGGER = re.compile(r"bearer|basic|eyJ|pass|secret|token|api|wh[sp]", re.IGNORECASE)
# The same on lower-cased ASCII text: IGNORECASE makes the scan ~6x slower, and this runs on every
# string of every log line (non-ASCII text keeps the case-folding regex: U+017F long s folds to "s").
_TRIGGER_LOWER = re.compile(r"bearer|basic|eyj|pass|secret|token|api|wh[sp]")


def _triggered(text: str) -> bool:
    if text.isascii():
        return _TRIGGER_LOWER.search(text.lower()) is not None
    return _TRIGGER.search(text) is not None


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def _scrub(text: str) -> str:
    global _scrubbed
    if len(text) > _SCRUB_CACHE_LEN:
        return _scrub_now(text)
    cache = _scrubbed
    done = cache.get(text)
    if done is None:
        done = _scrub_now(text)
        if len(cache) >= _SCRUB_CACHE_MAX:
            cache = _scrubbed = {}
        cache[text] = done
    return done


def _scrub_now(text: str) -> str:
    if _triggered(text):
        for pattern, replacement in _SECRET_IN_TEXT:
            text = pattern.sub(replacement, text)
    for secret in _registered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact(value: Any, *, _depth: int = 0) -> Any:
    """Return a JSON-friendly copy of `value` with secrets masked (by key name and by content)."""
    if _depth > 8:
        return "..."
    kind = type(value)
    if kind is str:  # exact-type checks first: most values are plain str / int / float / None
        return _scrub(value)
    if kind is int or kind is float or value is None:
        return value
    if kind is dict:
        return _redact_mapping(value, _depth)
    if isinstance(value, str):
        return _scrub(value)
    if isinstance(value, bytes):
        return _scrub(value.decode("utf-8", "replace"))
    # Tuples and the `dict` fast path: union types and the Mapping ABC check cost ~3x as much per value.
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return _redact_mapping(value, _depth)
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, _depth=_depth + 1) for v in value]
    return _scrub(str(value))


def _redact_mapping(value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in value.items():
        key = k if type(k) is str else str(k)
        out[key] = REDACTED if _secret_key(key) else redact(v, _depth=depth + 1)
    return out


class _Timestamps:
    """ISO 8601 UTC with milliseconds; the part up to the second is formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # a race between threads only formats the same prefix twice
            stamp = datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds")
            self._prefix, self._second = stamp.removesuffix("+00:00"), second
        millis = min(999, int((created - second) * 1000))
        return f"{self._prefix}.{millis:03d}+00:00"


def _dumps(payload: dict[str, Any]) -> str:
    try:
        return orjson.dumps(payload).decode()
    except (orjson.JSONEncodeError, TypeError):  # e.g. an int beyond 64 bits
        return json.dumps(payload, ensure_ascii=False, default=str)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object per line, through the redaction guard."""

    def __init__(self) -> None:
        super().__init__()
        self._timestamps = _Timestamps()

    def format(self, record: logging.LogRecord) -> str:
        # Redacted as it is built: the five standard members are never secret-named, so only their
        # values are scrubbed (the timestamp is digits and punctuation: nothing to scrub).
        request_id = correlation_id.get()
        payload: dict[str, Any] = {
            "timestamp": self._timestamps.format(record.created),
            "level": _scrub(record.levelname),
            "logger": _scrub(record.name),
            "correlation_id": None if request_id is None else _scrub(request_id),
            "message": _scrub(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in payload:
                payload[key] = REDACTED if _secret_key(key) else redact(value, _depth=1)
        if record.exc_info and record.exc_info[0] is not None:
            payload["exc_type"] = _scrub(record.exc_info[0].__name__)
            payload["exc"] = _scrub("".join(traceback.format_exception(*record.exc_info)).rstrip())
        # orjson: ~1 us a line against json's ~7. `redact` has turned every value into JSON types already.
        return _dumps(payload)


_installed: logging.Handler | None = None


def configure_logging(level: str = "INFO", *, stream: TextIO | None = None) -> logging.Handler:
    """Route the root logger to JSON lines on `stream` (stderr by default). Idempotent."""
    global _installed
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Hypercorn's own "Running on ..." chatter duplicates our ready line; keep its warnings and errors.
    logging.getLogger("hypercorn.error").setLevel(max(logging.WARNING, root.level))
    _installed = handler
    return handler


@contextmanager
def use_correlation_id(value: str | None) -> Iterator[None]:
    """Set the correlation id for log lines emitted inside the block (and tasks spawned from it)."""
    token = correlation_id.set(value)
    try:
        yield
    finally:
        correlation_id.reset(token)
