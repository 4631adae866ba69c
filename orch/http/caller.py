"""Who is calling: the authenticated principal's name, for defaults (worker id, lock owner)."""

from __future__ import annotations

from orch.http.auth import current_principal

__all__ = ["caller_name"]


def caller_name() -> str | None:
    """The subject of the current request's principal (a user or system-token name); None if anonymous."""
    principal = current_principal()
    return principal.sub if principal is not None else None
