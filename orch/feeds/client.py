"""A raw SSE client for `GET /sse/events`: a line parser and a follower that reconnects with Last-Event-ID.

    async def show(event: FeedEvent) -> bool:
        print(event.seq, event.type)
        return event.type == "task.succeeded"      # True stops following

    last = await follow_events(url, token, {"type": "task."}, after=0, follow=True, on_event=show)

Used by `orch events` and `orch dispatch --stay` (through `follow_task`). Reconnects after network errors,
a `lagged` cut-off or a node shutdown, resuming after the last seq it saw: no gap, no duplicate.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

__all__ = [
    "TERMINAL_TASK_EVENTS",
    "FeedError",
    "FeedEvent",
    "SseComment",
    "SseMessage",
    "SseParser",
    "follow_events",
    "follow_task",
]

TERMINAL_TASK_EVENTS = frozenset({"task.succeeded", "task.cancelled", "task.dead"})
"""Event types after which a task changes no more on its own."""


@dataclass(frozen=True, slots=True)
class SseMessage:
    """One dispatched SSE message (`event` defaults to "message"; `id` None when the frame had none)."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


@dataclass(frozen=True, slots=True)
class SseComment:
    """A comment line (`: heartbeat`, `: live`), without the colon and the leading space."""

    text: str


class SseParser:
    """The SSE line protocol (WHATWG HTML §9.2.6): feed it lines without their line endings.

    As in browsers, `last_event_id` is set when a frame ends - also by a frame with an `id:` and no data,
    which dispatches nothing - and persists until the next `id:`.
    """

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id_buffer = ""
        self._retry: int | None = None
        self.last_event_id = ""

    def feed(self, line: str) -> SseMessage | SseComment | None:
        """Process one line; returns a message on a blank line that ends one, or a comment."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return SseComment(line[1:].removeprefix(" "))
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id_buffer = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SseMessage | None:
        self.last_event_id = self._id_buffer
        event, lines, retry = self._event or "message", self._data, self._retry
        self._event, self._data, self._retry = "", [], None
        if not lines:
            return None  # no data: nothing to dispatch (an `id:` alone still moved last_event_id)
        return SseMessage(event, "\n".join(lines), self.last_event_id or None, retry)


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One event of the feed (the JSON of a `StoredEvent`)."""

    seq: int
    type: str
    data: Mapping[str, Any]
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def subject(self) -> str | None:
        """The event's subject (a task id for task events)."""
        value = self.raw.get("subject")
        return value if isinstance(value, str) else None


class FeedError(Exception):
    """The node refused the stream (bad token, bad filter ...): `status` and the problem's `detail`."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


OnEvent = Callable[[FeedEvent], Awaitable[bool | None]]
OnNote = Callable[[str], None]


@dataclass(slots=True)
class _Cursor:
    after: int | None
    follow: bool
    done: bool = False
    live: bool = False


async def follow_events(
    url: str,
    token: str | None,
    query: Mapping[str, str],
    *,
    after: int | None,
    follow: bool,
    on_event: OnEvent,
    on_note: OnNote | None = None,
    idle_timeout: float = 60.0,
    max_backoff: float = 5.0,
    max_attempts: int | None = None,
) -> int | None:
    """Stream events matching `query` after seq `after` (None: from now) and hand each to `on_event`.

    Without `follow` it returns once the replay has caught up (`: live`). With it, it runs until
    `on_event` returns True, reconnecting (resuming after the last seq seen) on network errors, lagged
    cut-offs and node shutdowns, up to `max_attempts` connections in a row that fail (None: no limit).
    `on_note` hears about reconnects. Returns the last seq seen. Raises `FeedError` on a 4xx answer.
    """
    cursor = _Cursor(after, follow)
    failures = 0
    backoff = 0.2
    headers = {"Accept": "text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = httpx.Timeout(10.0, read=idle_timeout)
    async with httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=timeout) as http:
        while True:
            progressed = False
            try:
                progressed = await _stream_once(http, query, cursor, on_event)
                if cursor.done or (cursor.live and not follow):
                    return cursor.after
                note = "stream ended; reconnecting"
            except httpx.TransportError as exc:
                note = f"connection problem ({type(exc).__name__}); reconnecting"
            except FeedError as exc:
                if exc.status < 500 and exc.status != 429:
                    raise
                note = f"node answered {exc.status}; retrying"
            failures = 0 if progressed else failures + 1
            if max_attempts is not None and failures >= max_attempts:
                raise FeedError(503, f"gave up after {failures} attempts: {note}")
            if on_note is not None:
                on_note(note)
            if progressed:
                backoff = 0.2
            await trio.sleep(backoff)
            backoff = min(max_backoff, backoff * 2)


async def _stream_once(
    http: httpx.AsyncClient, query: Mapping[str, str], cursor: _Cursor, on_event: OnEvent
) -> bool:
    """One connection; returns whether it delivered anything. Updates `cursor` as it goes."""
    params = dict(query)
    headers: dict[str, str] = {}
    if cursor.after is not None:
        headers["Last-Event-ID"] = str(cursor.after)
    progressed = False
    async with http.stream("GET", "/sse/events", params=params, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            raise FeedError(response.status_code, _problem_detail(response))
        parser = SseParser()
        async for line in response.aiter_lines():
            item = parser.feed(line)
            if not line and parser.last_event_id.isdigit() and int(parser.last_event_id) != cursor.after:
                cursor.after = int(parser.last_event_id)
                progressed = True
            if isinstance(item, SseComment):
                if item.text == "live":
                    cursor.live = progressed = True
                    if not cursor.follow:
                        return True
                continue
            if item is None:
                continue
            if item.event in ("lagged", "shutdown"):
                return progressed  # the server ends the stream; resume after cursor.after
            if item.event == "expired":
                raise FeedError(401, "the token expired; get a fresh one and resume after the last seq")
            event = _event(item)
            if event is not None and await on_event(event):
                cursor.done = True
                return True
    return progressed


def _event(message: SseMessage) -> FeedEvent | None:
    try:
        raw = json.loads(message.data)
    except ValueError:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("seq"), int):
        return None
    data = raw.get("data")
    return FeedEvent(
        raw["seq"], str(raw.get("type", message.event)), data if isinstance(data, dict) else {}, raw
    )


def _problem_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or response.reason_phrase)
    return response.reason_phrase


async def follow_task(
    url: str,
    token: str | None,
    task_id: str,
    *,
    on_event: OnEvent | None = None,
    on_note: OnNote | None = None,
) -> FeedEvent:
    """Follow task `task_id`'s events (all of them, from the start) until it ends; return the final event
    (`task.succeeded`, `task.cancelled` or `task.dead`). Reconnects as needed; bound it with a cancel
    scope. `on_event` sees every event first (its return value is ignored)."""
    final: list[FeedEvent] = []

    async def check(event: FeedEvent) -> bool:
        if on_event is not None:
            await on_event(event)
        if event.type in TERMINAL_TASK_EVENTS:
            final.append(event)
            return True
        return False

    query = {"task_id": task_id, "type": "task."}
    await follow_events(url, token, query, after=0, follow=True, on_event=check, on_note=on_note)
    return final[0]
