"""The one rule every load path obeys: traffic goes to this machine's loopback interface only."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["LOOPBACK_HOSTS", "check_loopback"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def check_loopback(url: str) -> None:
    """Refuse any target that is not 127.0.0.1 / localhost / ::1."""
    host = urlsplit(url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"load is only ever sent to 127.0.0.1 / localhost / ::1, not {host!r}")
