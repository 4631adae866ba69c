"""Typed coercion of raw config values into dataclass sections, with key-naming error messages.

Strings are accepted for numbers and booleans (they come from env vars and `${VAR}`), but strictly:
"8080" is a port, "8080x" is an error. Field metadata carries the constraints (see `orch.config._f`).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class ConfigError(ValueError):
    """Invalid configuration. `problems` lists each one as "<section>.<key>: <problem>"."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]

    @classmethod
    def many(cls, problems: list[str]) -> ConfigError:
        """One error carrying several problems, one per line."""
        return cls("\n".join(problems), problems)


class _Invalid(Exception):
    """Internal: a value failed coercion; the message is the problem without the key."""


def build_section(cls: type[Any], name: str, raw: Mapping[str, Any], problems: list[str]) -> Any:
    """Build dataclass `cls` from `raw`, appending "<name>.<key>: ..." to `problems` for each bad key."""
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in sorted(set(raw) - set(known)):
        problems.append(f"{name}.{key}: unknown key (known: {', '.join(known)})")
    values: dict[str, Any] = {}
    for key, f in known.items():
        if key not in raw:
            continue
        try:
            values[key] = _check(_coerce(hints[key], raw[key], f.metadata), f.metadata)
        except _Invalid as exc:
            problems.append(f"{name}.{key}: {exc}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:  # pragma: no cover - defaults are valid by construction
        problems.append(f"{name}: {exc}")
        return cls()


def _shown(value: Any, meta: Mapping[str, Any]) -> str:
    return "<redacted>" if meta.get("secret") else repr(value)


def _coerce(tp: Any, value: Any, meta: Mapping[str, Any]) -> Any:
    args = typing.get_args(tp)
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        if value is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, meta)
    if tp is bool:
        return _to_bool(value, meta)
    if tp is int:
        return _to_int(value, meta)
    if tp is float:
        return _to_float(value, meta)
    if tp is str:
        return _to_str(value, meta)
    if tp is Path:
        return value if isinstance(value, Path) else Path(_to_str(value, meta))
    if typing.get_origin(tp) is tuple:
        return _to_str_tuple(value, meta)
    raise TypeError(f"unsupported config type {tp!r}")  # pragma: no cover - programming error


def _to_bool(value: Any, meta: Mapping[str, Any]) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Invalid(f"must be true or false, got {_shown(value, meta)}")


def _range_text(meta: Mapping[str, Any], kind: str) -> str:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and hi is not None:
        return f"{lo}..{hi}"
    if lo is not None:
        return f"{kind} >= {lo}"
    if hi is not None:
        return f"{kind} <= {hi}"
    return kind


def _to_int(value: Any, meta: Mapping[str, Any]) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        if text.lstrip("+-").isdigit():
            return int(text)
    raise _Invalid(f"must be {_range_text(meta, 'an integer')}, got {_shown(value, meta)}")


def _to_float(value: Any, meta: Mapping[str, Any]) -> float:
    result: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            result = None
    if result is None or not math.isfinite(result):
        raise _Invalid(f"must be {_range_text(meta, 'a number')}, got {_shown(value, meta)}")
    return result


def _to_str(value: Any, meta: Mapping[str, Any]) -> str:
    # YAML turns bare 123 or true into non-strings; accept scalars but never containers.
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _Invalid(f"must be a string, got {type(value).__name__}")


def _to_str_tuple(value: Any, meta: Mapping[str, Any]) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple):
        items = [_to_str(v, meta) for v in value]
    else:
        raise _Invalid(f"must be a list of strings, got {type(value).__name__}")
    if meta.get("origins"):
        for item in items:
            _check_origin(item)
    return tuple(items)


def _check_origin(origin: str) -> None:
    if origin == "*":
        return
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        raise _Invalid(f"must contain '*' or origins like 'https://app.example.com', got {origin!r}")


def _check(value: Any, meta: Mapping[str, Any]) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return _check_str(value, meta)
    if isinstance(value, int | float) and not isinstance(value, bool):
        lo, hi = meta.get("min"), meta.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            kind = "an integer" if isinstance(value, int) else "a number"
            raise _Invalid(f"must be {_range_text(meta, kind)}, got {_shown(value, meta)}")
    return value


def _check_str(value: str, meta: Mapping[str, Any]) -> str:
    if meta.get("upper"):
        value = value.strip().upper()
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise _Invalid(f"must be one of {', '.join(choices)}, got {_shown(value, meta)}")
    min_len = meta.get("min_len")
    if min_len is not None and len(value) < min_len:
        raise _Invalid(f"must be at least {min_len} characters long")
    return value
