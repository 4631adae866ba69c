"""glibc malloc settings for a long-running node (what the 10-minute soak showed).

Two allocator effects made a node's RSS creep up for minutes without any live object leaking: glibc gives
each thread that contends for the heap an arena of its own (up to 8 per core), and freed memory stays
resident inside those arenas. The SQLite writer, reader and checkpoint threads spread their pages over
several. Capping the arenas at 2 and returning free heap pages to the OS once a minute (`trim`, ~1 ms) took
the RSS growth over a soak's second half from +8.3 to +3.1 MB (issue #8 notes). Elsewhere than glibc
(musl, macOS) both calls do nothing.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["ARENA_MAX", "limit_arenas", "trim"]

ARENA_MAX = 2
"""Arenas `orch serve` allows (glibc's ``MALLOC_ARENA_MAX`` in the environment takes precedence)."""

_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def _glibc() -> ctypes.CDLL | None:
    libc = ctypes.CDLL(None)  # the running process's own symbols, libc among them
    return libc if hasattr(libc, "gnu_get_libc_version") else None


def limit_arenas(count: int = ARENA_MAX) -> bool:
    """Cap glibc's malloc arenas at ``count`` (call before threads start); False if not applied."""
    libc = _glibc()
    if libc is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, count))


def trim() -> bool:
    """Hand free heap memory back to the OS (``malloc_trim(0)``); True if some was released."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))
