"""The feed endpoints: `GET /sse/events`, `WS /ws/events`, `WS /ws/dispatch` (installed by `create_app`)."""

from __future__ import annotations

import math
from typing import Any

from quart import Response

from orch.feeds.feed import FeedEnded
from orch.feeds.hub import FeedHub
from orch.feeds.sse import SSE_CONTENT_TYPE, sse_filter, sse_response
from orch.feeds.ws_dispatch import serve_dispatch_socket
from orch.feeds.ws_events import serve_events_socket
from orch.http.app import current_node
from orch.http.auth import current_principal
from orch.http.problems import ServiceUnavailable, ShuttingDown
from orch.http.routing import QueryParam, Router

__all__ = ["feeds", "hub_of"]

feeds = Router("feeds")

_SEQ: dict[str, Any] = {"type": "integer", "minimum": 0}
_FILTERS = (
    QueryParam("type", "Event-type prefixes, comma-separated (`task.`, `lock.acquired`); repeatable."),
    QueryParam("topic", "Topics (the first part of a type: `task`, `lock`, ...), comma-separated."),
    QueryParam("task_id", "Only events of this task."),
    QueryParam("core_id", "Only events of this core."),
)


def hub_of() -> FeedHub:
    """The current node's feed hub (503 while the node has none)."""
    hub = current_node().feeds
    if hub is None:
        raise ServiceUnavailable("The event feeds are not running.")
    return hub


@feeds.get(
    "/sse/events",
    summary="Follow events live (Server-Sent Events)",
    auth="event.stream",
    content_type=SSE_CONTENT_TYPE,
    response_schema={"type": "string"},
    query=(*_FILTERS, QueryParam("after", "Replay events with a greater seq first (the header wins).", _SEQ)),
    responses={
        200: "An event stream: `id:` = seq, `event:` = type, `data:` = the event as JSON; comment lines as "
        "heartbeats; a final `lagged`, `shutdown` or `expired` frame before the server ends the stream",
        401: "No or bad token",
        403: "The role may not stream events",
        422: "A bad filter or seq",
        503: "The node is shutting down",
    },
)
async def sse_events() -> Response:
    """Events in seq order. Reconnect with `Last-Event-ID` (or `?after=`) to resume with no gap and no
    duplicate; the stream is cut off (final `lagged` frame) if the client falls too far behind."""
    hub = hub_of()
    event_filter, after = sse_filter()
    try:
        feed = hub.open_feed(event_filter, after=after)
    except FeedEnded:
        raise ShuttingDown() from None
    principal = current_principal()
    return sse_response(hub, feed, expires_at=principal.expires_at if principal is not None else math.inf)


@feeds.websocket(
    "/ws/events",
    summary="Follow events live (websocket)",
    auth="event.stream",
    description=(
        "JSON messages. Authenticate with `?token=` or a first message `{'op': 'auth', 'token': ...}`. "
        "Client ops: `subscribe` (`id`, `types`, `topics`, `task_id`, `core_id`, `after`), `unsubscribe` "
        "(`id`), `ping`. Server ops: `subscribed`, `events` (`id`, `last_seq`, `events`: many per message "
        "when behind), `live` (the replay has caught up), `lagged` / `ended` (subscribe again with `after` "
        "= `last_seq`), `unsubscribed`, `pong`, `heartbeat`, `error` (problem-like; the socket stays "
        "open), `shutdown` (then close 1001)."
    ),
)
async def ws_events() -> Response | None:
    """The event feed over a websocket, many subscriptions per connection."""
    return await serve_events_socket(hub_of())


@feeds.websocket(
    "/ws/dispatch",
    summary="Dispatch, heartbeat and report at high rate (websocket)",
    auth="task.dispatch",
    description=(
        "JSON messages, pipelined: each request carries an `id` echoed by its answer, and up to "
        "`feeds.ws_max_in_flight` requests run at once (answers may come out of order). Authenticate with "
        "`?token=` or a first message `{'op': 'auth', 'token': ...}`. Ops: `dispatch` (the fields of "
        "POST /dispatch), `dispatch_batch` (`tasks`), `claim` (`core_id`, `worker_id`, `lease`, `wait`), "
        "`heartbeat` (`task_id`, `lease_token`, `progress`), `report` (`task_id`, `lease_token`, `status`, "
        "`result`, `error`, `progress`), `ping`. Answers: `{'id', 'ok': true, 'result'}` or "
        "`{'id', 'ok': false, 'error': <problem>}`; a bad message is answered, never punished by a close."
    ),
)
async def ws_dispatch() -> Response | None:
    """Pipelined task operations over one connection."""
    return await serve_dispatch_socket(hub_of())
