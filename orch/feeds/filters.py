"""Which events a feed carries: event-type prefixes, topics, one task, one core.

    EventFilter.parse(types="task.,lock.acquired", topics=None, task_id="t-1", core_id=None)

Types are prefixes (`task.` matches every task event, `task.succeeded` that one type; a trailing `*` is
accepted and means the same). Topics are the first dot-separated part of a type (`task`, `lock`, ...).
`task_id` matches the event's subject (task events carry the task id there); `core_id` the event's core.
All given conditions must hold. The filter also yields the Broadcast patterns to subscribe with and the
store-side conditions for replay, so most filtering happens before an event reaches Python.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from actors.storage import StoredEvent
from orch.http.problems import ValidationFailed

__all__ = ["MAX_ITEMS", "EventFilter"]

MAX_ITEMS = 32
_ITEM = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_ID_MAX = 256


@dataclass(frozen=True, slots=True)
class EventFilter:
    """An immutable event filter; the empty filter passes everything."""

    types: tuple[str, ...] = ()  # type prefixes (no trailing '*')
    topics: tuple[str, ...] = ()
    task_id: str | None = None
    core_id: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        types: str | Iterable[str] | None = None,
        topics: str | Iterable[str] | None = None,
        task_id: str | None = None,
        core_id: str | None = None,
    ) -> EventFilter:
        """Validate raw values (comma lists or lists); raise `ValidationFailed` naming the parameter."""
        return cls(
            types=_items("type", types, strip_star=True),
            topics=_items("topic", topics, strip_star=False),
            task_id=_ident("task_id", task_id),
            core_id=_ident("core_id", core_id),
        )

    def matches(self, event: StoredEvent) -> bool:
        """True when `event` passes every condition."""
        if self.types and not event.type.startswith(self.types):
            return False
        if self.topics and event.topic not in self.topics:
            return False
        if self.task_id is not None and event.subject != self.task_id:
            return False
        return self.core_id is None or event.core_id == self.core_id

    def patterns(self) -> list[str] | None:
        """Broadcast topic patterns (the Broadcast is keyed by event type); None = every event."""
        if self.types:
            return [f"{prefix}*" for prefix in self.types]
        if self.topics:
            # "task" is the topic of "task.queued" and also of a bare "task" type.
            return [p for topic in self.topics for p in (topic, f"{topic}.*")]
        return None

    def store_topics(self) -> list[str] | None:
        """The `topic` column values replay may restrict itself to (None = no restriction)."""
        topics: set[str] | None = set(self.topics) if self.topics else None
        if self.types and all("." in prefix for prefix in self.types):
            from_types = {prefix.partition(".")[0] for prefix in self.types}
            topics = from_types if topics is None else topics & from_types
        return None if topics is None else sorted(topics)

    def to_query(self) -> dict[str, str]:
        """The query parameters that express this filter (for clients and reconnects)."""
        query: dict[str, str] = {}
        if self.types:
            query["type"] = ",".join(self.types)
        if self.topics:
            query["topic"] = ",".join(self.topics)
        if self.task_id is not None:
            query["task_id"] = self.task_id
        if self.core_id is not None:
            query["core_id"] = self.core_id
        return query


def _items(name: str, raw: str | Iterable[str] | None, *, strip_star: bool) -> tuple[str, ...]:
    if raw is None:
        return ()
    values: Sequence[str] = raw.split(",") if isinstance(raw, str) else list(raw)
    items: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise ValidationFailed(name, "every item must be a string")
        item = value.strip()
        if item == "*":
            return ()  # every event
        # A trailing '*' is redundant for type prefixes; "task.*" names the topic "task".
        item = item[:-1] if strip_star and item.endswith("*") else item.removesuffix(".*")
        if not item:
            raise ValidationFailed(name, "items must not be empty")
        if _ITEM.fullmatch(item) is None:
            raise ValidationFailed(name, f"{item[:40]!r} is not a valid {name} (letters, digits, _ . : -)")
        items.append(item)
    if len(items) > MAX_ITEMS:
        raise ValidationFailed(name, f"at most {MAX_ITEMS} items, got {len(items)}")
    return tuple(dict.fromkeys(items))


def _ident(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not value or len(value) > _ID_MAX:
        raise ValidationFailed(name, f"must be 1..{_ID_MAX} characters long")
    return value
