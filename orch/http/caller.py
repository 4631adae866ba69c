"""Who is calling: the authenticated principal's name, for defaults (worker id, lock owner)."""

from __future__ import annotations

from typing import Any

from quart import g

__all__ = ["caller_name"]


def caller_name() -> str | None:
    """The name of the authenticated caller of the current request, if authentication attached one."""
    principal: Any = getattr(g, "principal", None)
    if principal is None:
        return None
    name = getattr(principal, "sub", None)
    return str(name) if name else None
