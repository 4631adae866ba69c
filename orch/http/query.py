"""Strict query-string accessors: a bad value is a 422 that names the parameter, never a 500."""

from __future__ import annotations

import math
from collections.abc import Iterable

from quart import request

from orch.http.problems import ValidationFailed

__all__ = ["query_csv", "query_int", "query_number", "query_str"]


def query_str(name: str, *, max_len: int = 512) -> str | None:
    """An optional string parameter (empty counts as absent)."""
    value = request.args.get(name)
    if not value:
        return None
    if len(value) > max_len:
        raise ValidationFailed(name, f"must be at most {max_len} characters long, got {len(value)}")
    return value


def query_int(name: str, *, default: int, min: int, max: int) -> int:
    """An optional integer parameter within [min, max]."""
    text = request.args.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValidationFailed(name, f"must be an integer, got {text[:40]!r}") from None
    if not min <= value <= max:
        raise ValidationFailed(name, f"must be within [{min}, {max}], got {value}")
    return value


def query_number(name: str, *, default: float, min: float, max: float) -> float:
    """An optional finite number parameter within [min, max]."""
    text = request.args.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValidationFailed(name, f"must be a number, got {text[:40]!r}") from None
    if not math.isfinite(value) or not min <= value <= max:
        raise ValidationFailed(name, f"must be within [{min}, {max}], got {text[:40]!r}")
    return value


def query_csv(name: str, *, choices: Iterable[str]) -> frozenset[str] | None:
    """An optional comma-separated list whose items must be among `choices`."""
    text = request.args.get(name)
    if not text:
        return None
    allowed = set(choices)
    items = frozenset(item.strip() for item in text.split(",") if item.strip())
    unknown = sorted(items - allowed)
    if unknown:
        raise ValidationFailed(name, f"unknown value {unknown[0][:40]!r}; use {', '.join(sorted(allowed))}")
    return items or None
