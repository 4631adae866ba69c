"""What both websocket endpoints share: authentication (handshake or first message), JSON messages,
problem-like error messages, and the single writer that owns the socket's send side.

Authentication uses the same `authorize` as every HTTP route (`orch.http.auth`). The token comes from
`Authorization: Bearer`, `?token=`, or - browsers cannot set headers on a websocket - the first message,
`{"op": "auth", "token": "..."}`. A refusal at the handshake is an HTTP problem response (no upgrade); a
refusal after it is an `error` message followed by close code 4401 (unauthenticated) or 4403 (forbidden).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import trio
from quart import Response, websocket

from actors.security.messages import Action, Principal, SecurityError
from orch.http.app import current_node
from orch.http.auth import authorize, bearer_token
from orch.http.body import JsonObject, parse_json_object
from orch.http.problems import (
    PROBLEM_CONTENT_TYPE,
    ApiError,
    BadRequest,
    InternalError,
    Unauthorized,
    problem_body,
    to_api_error,
)
from orch.logs import correlation_id

__all__ = [
    "AUTH_DEADLINE",
    "CLOSE_FORBIDDEN",
    "CLOSE_GOING_AWAY",
    "CLOSE_UNAUTHENTICATED",
    "Close",
    "SocketWriter",
    "parse_message",
    "ws_authenticate",
    "ws_deny",
    "ws_error_message",
]

AUTH_DEADLINE = 10.0  # seconds an unauthenticated socket may stay open waiting for its auth message
MAX_MESSAGE = 1024 * 1024  # bytes; larger messages are refused (answered, the socket stays open)
CLOSE_GOING_AWAY = 1001
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


@dataclass(frozen=True, slots=True)
class Close:
    """Tell the writer to close the socket (after the messages queued before it)."""

    code: int
    reason: str = ""


def ws_api_error(exc: BaseException) -> ApiError:
    """The problem an exception stands for (unknown exceptions: a logged 500)."""
    error = to_api_error(exc)
    return InternalError() if error is None else error


def ws_error_message(error: ApiError, *, request_id: str | None = None, **fields: Any) -> str:
    """An `error` message: `{"op": "error", ..fields, "error": <problem document>}`."""
    body = problem_body(error, instance=websocket.path, request_id=correlation_id.get())
    message: dict[str, Any] = {"op": "error", **fields, "error": body}
    if request_id is not None:
        message["id"] = request_id
    return json.dumps(message, ensure_ascii=False, default=str)


def ws_deny(error: ApiError) -> Response:
    """Refuse the handshake with a problem+json response (the socket is never upgraded)."""
    body = problem_body(error, instance=websocket.path, request_id=correlation_id.get())
    return Response(
        json.dumps(body, ensure_ascii=False, default=str),
        status=error.status,
        headers=error.headers,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def parse_message(raw: str | bytes) -> JsonObject:
    """A client message as a strict JSON object (ApiError 400/413/422 when it is not one)."""
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > MAX_MESSAGE:
        raise BadRequest(f"Messages are limited to {MAX_MESSAGE} bytes.")
    return parse_json_object(data)


def handshake_token() -> str | None:
    """The token offered at the handshake (`Authorization: Bearer` or `?token=`), if any."""
    token = bearer_token(websocket.headers.get("Authorization"))
    return token if token is not None else (websocket.args.get("token") or None)


@dataclass(frozen=True, slots=True)
class Denied:
    """The handshake was refused; serve ``response`` instead of accepting the socket."""

    response: Response


async def accept_socket(action: Action) -> Principal | Denied | None:
    """Authenticate the handshake (if it carries a token) and accept the socket.

    ``None`` means no token came with the handshake: the first message must authenticate.
    """
    try:
        token = handshake_token()
        principal = await ws_authenticate(action, token) if token is not None else None
    except (ApiError, SecurityError) as exc:
        return Denied(ws_deny(ws_api_error(exc)))
    await websocket.accept()
    return principal


async def ws_authenticate(action: Action, token: str | None) -> Principal:
    """`authorize` for a websocket: the same check as every HTTP route (route class `stream`)."""
    client = websocket.remote_addr or "unknown"
    return await authorize(current_node(), action, token, route_class="stream", client=client)


async def close_at_expiry(principal: Principal, out: SocketWriter) -> None:
    """Close the socket (error + 4401) when the principal's token expires: streams never outlive it."""
    if not math.isfinite(principal.expires_at):
        return
    await trio.sleep(max(0.0, principal.expires_at - time.time()))
    error = Unauthorized("The token has expired; reconnect with a fresh one.")
    await out.send(ws_error_message(error))
    await out.send(Close(CLOSE_UNAUTHENTICATED, error.title))


def close_code_for(error: ApiError) -> int:
    """The close code that goes with an authentication refusal."""
    return CLOSE_FORBIDDEN if error.status == 403 else CLOSE_UNAUTHENTICATED


async def first_message_auth(action: Action, out: SocketWriter) -> Principal | None:
    """Wait (bounded) for `{"op": "auth", "token": ...}`; on failure queue an error + close, return None."""
    error: ApiError
    with trio.move_on_after(AUTH_DEADLINE):
        raw = await websocket.receive()
        try:
            message = parse_message(raw)
            op = message.req_str("op", max_len=32)
            if op != "auth":
                raise Unauthorized('Authenticate first: {"op": "auth", "token": "..."}.')
            token = message.req_str("token", max_len=8192)
            return await ws_authenticate(action, token)
        except (ApiError, SecurityError) as exc:
            error = ws_api_error(exc)
        await out.send(ws_error_message(error))
        await out.send(Close(close_code_for(error), error.title))
        return None
    error = Unauthorized(f"No auth message within {AUTH_DEADLINE:g} s.")
    await out.send(ws_error_message(error))
    await out.send(Close(CLOSE_UNAUTHENTICATED, error.title))
    return None


class SocketWriter:
    """The only task that sends on the socket: messages go through a bounded channel (backpressure on
    the producers), heartbeats fill silences, and a `Close` ends it."""

    def __init__(self, *, heartbeat: float, capacity: int = 32) -> None:
        self._send, self._receive = trio.open_memory_channel[str | Close](capacity)
        self._heartbeat = heartbeat
        self.sent = 0

    async def send(self, message: str | Close) -> None:
        """Queue a message (waits while the queue is full)."""
        await self._send.send(message)

    def try_send(self, message: str | Close) -> bool:
        """Queue a message if there is room; False if the writer is behind."""
        try:
            self._send.send_nowait(message)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    async def run(self) -> None:
        """Send queued messages until a `Close` (then close the socket) or cancellation."""
        heartbeat = json.dumps({"op": "heartbeat"})
        while True:
            item: str | Close | None = None
            with trio.move_on_after(self._heartbeat):
                item = await self._receive.receive()
            if item is None:
                await websocket.send(heartbeat)
            elif isinstance(item, Close):
                await websocket.close(item.code, item.reason)
                return
            else:
                await websocket.send(item)
                self.sent += 1


def json_fields(**fields: Any) -> str:
    """A compact JSON message."""
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False, default=str)


def principal_summary(principal: Principal) -> Mapping[str, Any]:
    """What the client is told about itself once authenticated."""
    return {"sub": principal.sub, "role": principal.role.value, "kind": principal.kind}
