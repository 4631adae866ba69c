"""Topic routing for ``Broadcast``: which subscribers does a published topic reach?

A pattern is an exact topic (``"task.queued"``) or a prefix ending in ``*`` (``"task.*"`` matches every
topic that starts with ``"task."``; ``"*"`` matches every topic). Resolving a topic is cached, so the
publish path is one dict lookup plus a loop over a tuple.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable
from typing import Generic, TypeVar

S = TypeVar("S", bound=Hashable)

WILDCARD = "*"

# Per-entity topics ("job.123") would otherwise grow the cache without bound.
_CACHE_LIMIT = 4096


def normalize_patterns(topics: Collection[str] | None) -> tuple[str, ...]:
    """Validate topic patterns; ``None`` means every topic. Duplicates are removed, order kept."""
    if topics is None:
        return (WILDCARD,)
    if isinstance(topics, str):
        # A str is a Collection[str] of its characters: almost certainly a mistake.
        raise TypeError(f"topics must be a collection of topic patterns, not the str {topics!r}")
    if not topics:
        raise ValueError("topics must not be empty (pass None to receive every topic)")
    for pattern in topics:
        if WILDCARD in pattern[:-1]:
            raise ValueError(f"{pattern!r}: '*' is allowed only at the end of a topic pattern")
    return tuple(dict.fromkeys(topics))


class Router(Generic[S]):
    """Maps topic patterns to subscribers; resolves a topic to the subscribers it reaches, each once."""

    __slots__ = ("_cache", "_exact", "_prefix")

    def __init__(self) -> None:
        self._exact: dict[str, dict[S, None]] = {}
        self._prefix: dict[str, dict[S, None]] = {}
        self._cache: dict[str, tuple[S, ...]] = {}

    def add(self, subscriber: S, patterns: tuple[str, ...]) -> None:
        """Route every topic matching one of ``patterns`` to ``subscriber``."""
        for pattern in patterns:
            table, key = self._table(pattern)
            table.setdefault(key, {})[subscriber] = None
        self._cache.clear()

    def remove(self, subscriber: S, patterns: tuple[str, ...]) -> None:
        """Undo ``add``; patterns left without subscribers are forgotten."""
        for pattern in patterns:
            table, key = self._table(pattern)
            subscribers = table.get(key)
            if subscribers is not None:
                subscribers.pop(subscriber, None)
                if not subscribers:
                    del table[key]
        self._cache.clear()

    def clear(self) -> None:
        """Forget every route."""
        self._exact.clear()
        self._prefix.clear()
        self._cache.clear()

    def resolve(self, topic: str) -> tuple[S, ...]:
        """The subscribers ``topic`` reaches, each once, in a stable order."""
        cached = self._cache.get(topic)
        if cached is not None:
            return cached
        found: dict[S, None] = dict(self._exact.get(topic, ()))
        for prefix, subscribers in self._prefix.items():
            if topic.startswith(prefix):
                found.update(subscribers)
        resolved = tuple(found)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[topic] = resolved
        return resolved

    def _table(self, pattern: str) -> tuple[dict[str, dict[S, None]], str]:
        if pattern.endswith(WILDCARD):
            return self._prefix, pattern[:-1]
        return self._exact, pattern
