"""The ASGI edge around the Quart app: request ids, CORS, metrics, access log, and the Connection-close fix.

Raw routes: a few hot (method, path) pairs (POST /webhook, POST /dispatch, POST /dispatch/batch, GET and HEAD
/health) are served by plain ASGI handlers without Quart's request machinery; they get the same request id,
CORS headers, metrics and access log, and answer errors with the same problem+json documents
(`send_problem`). Their Quart routes stay registered for the OpenAPI document and the other methods (405).

Connection-close fix (DESIGN §7): when hypercorn-trio gets the last body message of a response it must
close (the request said `Connection: close`, or keep_alive_max_requests was reached), it closes the socket
from inside that very `send` call. Quart-Trio cancels the request's nursery as soon as hypercorn reports
the stream closed (`http.disconnect`), and that cancellation lands in the middle of the same call, before
`send_eof`/`aclose` run: the socket stays open and a client reading to EOF hangs. Shielding the final
body send lets hypercorn finish closing. Every step inside it is bounded (hypercorn already shields the
socket write itself), so the shield cannot hang. A raw handler whose `quart_free` attribute is true
goes without the shield: hypercorn itself never cancels the app's task when the stream closes (it only
queues `http.disconnect`), and such a handler does not watch `receive` while it answers. A raw handler
that hands only some requests to Quart (`DispatchEndpoint`: `stay`) is `quart_free` and passes Quart a
`shielded_final_send(send)`.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

import trio

from actors.security.messages import RateDecision
from orch.http.problems import (
    PROBLEM_CONTENT_TYPE,
    ApiError,
    BadRequest,
    InternalError,
    PayloadTooLarge,
    RequestTimeout,
    ShuttingDown,
    problem_body,
)
from orch.logs import correlation_id
from orch.metrics import UNMATCHED_ENDPOINT, HttpMetrics

__all__ = [
    "RATE_KEY",
    "REQUEST_ID_KEY",
    "ROUTE_KEY",
    "Edge",
    "read_body",
    "scope_header",
    "send_json",
    "send_problem",
    "shielded_final_send",
    "valid_request_id",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_KEY = "orch.request_id"  # scope key: the request id
ROUTE_KEY = "orch.route"  # scope key: the matched route template, set by the app
RATE_KEY = "orch.rate"  # scope key: the caller's RateDecision, set by the auth check
_RATE_HEADER_NAMES = frozenset({b"ratelimit", b"ratelimit-policy", b"retry-after"})

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_EXPOSED = b"X-Request-ID, Retry-After, RateLimit, RateLimit-Policy, Location, Allow"
_PREFLIGHT_ENDPOINT = "<cors-preflight>"

_ids = random.Random()  # seeded from os.urandom
_ACCESS_FORMAT = "%s %s %d"
_log = logging.getLogger("orch.http")
_access = logging.getLogger("orch.http.access")


def _new_request_id() -> str:
    return f"{_ids.getrandbits(128):032x}"


def valid_request_id(value: str | None) -> bool:
    """True for 1-128 characters of A-Z a-z 0-9 . _ : @ / + = - (safe to echo and to log)."""
    return value is not None and _REQUEST_ID.fullmatch(value) is not None


def scope_header(scope: Mapping[str, Any], name: bytes) -> str | None:
    """The first `name` header (lower-case bytes) of an ASGI scope, as text; None when absent."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def read_body(scope: Scope, receive: Receive, *, limit: int, time_limit: float) -> bytes:
    """The whole request body of a raw ASGI route, with Quart's rules: more than `limit` bytes (declared
    or received) is PayloadTooLarge (413); not complete within `time_limit` seconds, RequestTimeout (408).

    The body is complete at its last message or, with a Content-Length, once that many bytes came (the
    server's framing allows no more; its empty closing message is left unread). Messages already queued
    are taken without a wait (hypercorn-trio's `receive` is a memory channel's): the usual small body
    then needs no timer (a cancel scope with a deadline costs ~15 us).
    """
    declared = scope_header(scope, b"content-length")
    declared = declared.strip() if declared is not None else None
    length = int(declared) if declared and declared.isascii() and declared.isdigit() else None
    if length is not None and length > limit:
        raise PayloadTooLarge("The request body exceeds the configured limit.")
    body = _Body(limit, length)
    channel = getattr(receive, "__self__", None)
    if isinstance(channel, trio.MemoryReceiveChannel):
        try:
            while not body.add(channel.receive_nowait()):
                pass
            return body.joined()
        except trio.WouldBlock:
            pass
    with trio.move_on_after(time_limit):
        while not body.add(await receive()):
            pass
        return body.joined()
    raise RequestTimeout("The request body did not arrive in time.")


class _Body:
    """The chunks of one request body so far, with `read_body`'s checks."""

    __slots__ = ("chunks", "length", "limit", "size")

    def __init__(self, limit: int, length: int | None) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.length = length

    def add(self, message: Message) -> bool:
        """Take one ASGI receive message; True once the body is complete."""
        if message["type"] != "http.request":  # http.disconnect: nobody will read the answer
            raise BadRequest("The client went away before sending the whole body.")
        chunk = bytes(message.get("body", b""))
        self.size += len(chunk)
        if self.size > self.limit:
            raise PayloadTooLarge("The request body exceeds the configured limit.")
        self.chunks.append(chunk)
        return not message.get("more_body", False) or self.size == self.length

    def joined(self) -> bytes:
        """The body received."""
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)


async def send_json(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Answer a raw ASGI route with `body` (what a Quart Response with that content type sends)."""
    head = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_problem(
    send: Send, scope: Scope, error: ApiError, extra: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer a raw ASGI route with `error`'s problem+json document (as `app.problem_response` does)."""
    document = problem_body(error, instance=scope.get("path"), request_id=scope.get(REQUEST_ID_KEY))
    body = json.dumps(document, ensure_ascii=False, default=str).encode()
    headers = [*((k.lower().encode(), v.encode()) for k, v in error.headers.items()), *extra]
    await send_json(send, error.status, body, content_type=PROBLEM_CONTENT_TYPE, headers=headers)


def shielded_final_send(send: Send) -> Send:
    """`send` with the last body message of the response shielded from cancellation (the
    Connection-close fix of the module docstring), for a request that Quart answers."""

    async def shielded(message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            with trio.CancelScope(shield=True):
                await send(message)
        else:
            await send(message)

    return shielded


def _add_rate_headers(headers: list[tuple[bytes, bytes]], rate: RateDecision) -> None:
    """The caller's RateLimit / RateLimit-Policy, unless the answer carries its own."""
    present = {bytes(k).lower() for k, _ in headers}
    for name, value in rate.headers():
        key = name.lower().encode()
        if key in _RATE_HEADER_NAMES and key not in present:
            headers.append((key, value.encode("latin-1")))


def _only_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return isinstance(exc, trio.Cancelled)


class Edge:
    """ASGI middleware; one instance wraps the node's Quart app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: HttpMetrics,
        cors_origins: Iterable[str] = (),
        access_log: bool = True,
        raw_routes: Mapping[tuple[str, str], ASGIApp] | None = None,
    ) -> None:
        self.app = app
        # (method, path) -> a raw ASGI handler served without Quart; the path is its route template.
        self.raw_routes = dict(raw_routes or {})
        self.metrics = metrics
        self.cors_origins = frozenset(cors_origins)
        self.access_log = access_log  # one line per request; when off, only 5xx answers are logged

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = scope_header(scope, b"x-request-id")
        # 128 random bits as 32 hex digits, like uuid4().hex without a UUID or a getrandom syscall per
        # request. Ids need to be unique, not unguessable: a PRNG seeded from the OS is enough.
        request_id = (
            given if given is not None and valid_request_id(given) else f"{_ids.getrandbits(128):032x}"
        )
        scope[REQUEST_ID_KEY] = request_id
        token = correlation_id.set(request_id)  # what `use_correlation_id` does, minus a generator
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
            else:
                await self._http(scope, receive, send, request_id)
        finally:
            correlation_id.reset(token)

    def _allowed_origin(self, scope: Scope) -> str | None:
        if not self.cors_origins:
            return None
        origin = scope_header(scope, b"origin")
        if origin is None:
            return None
        if "*" in self.cors_origins:
            return "*"
        return origin if origin in self.cors_origins else None

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        started = time.perf_counter()
        allow_origin = self._allowed_origin(scope)
        if (
            allow_origin is not None
            and scope["method"] == "OPTIONS"
            and scope_header(scope, b"access-control-request-method") is not None
        ):
            await self._preflight(scope, send, allow_origin, request_id)
            self._finish(scope, 204, started, endpoint=_PREFLIGHT_ENDPOINT)
            return
        extra = [(b"x-request-id", request_id.encode())]
        if allow_origin is not None:
            extra += [(b"access-control-allow-origin", allow_origin.encode())]
            extra += [(b"access-control-expose-headers", _EXPOSED), (b"vary", b"Origin")]
        status = 0
        handler = self.app
        if self.raw_routes:
            raw = self.raw_routes.get((scope["method"], scope["path"]))
            if raw is not None:
                scope[ROUTE_KEY] = scope["path"]
                handler = raw
        # Only Quart cancels a request when its stream closes (see the module docstring): the last send of
        # a raw handler that never hands the request to Quart needs no shield (a cancel scope, ~10 us).
        to_server = send if getattr(handler, "quart_free", False) else shielded_final_send(send)

        async def edge_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [*message.get("headers", ()), *extra]
                rate = scope.get(RATE_KEY)
                if rate is not None:
                    _add_rate_headers(headers, rate)
                message = {**message, "headers": headers}
            await to_server(message)

        self.metrics.in_flight_now += 1
        try:
            await handler(scope, receive, edge_send)
        except Exception:
            _log.exception("unhandled error escaped the app")
            if status == 0:
                status = 500
                await self._send_problem(scope, send, extra, InternalError())
        except BaseException as exc:
            # The server cancelled us (shutdown grace period over): say so rather than an empty 500.
            if status == 0 and _only_cancellation(exc):
                status = 503
                await self._send_problem(scope, send, extra, ShuttingDown())
            raise
        finally:
            self.metrics.in_flight_now -= 1
            self._finish(scope, status or 500, started)

    def _finish(self, scope: Scope, status: int, started: float, *, endpoint: str | None = None) -> None:
        elapsed = time.perf_counter() - started
        route = endpoint or scope.get(ROUTE_KEY) or UNMATCHED_ENDPOINT
        method = scope["method"]
        self.metrics.observe(method, route, status, elapsed)
        # Server errors are logged even with the access log off.
        if (self.access_log or status >= 500) and _access.isEnabledFor(logging.INFO):
            # makeRecord + handle is `info` minus the caller lookup (a stack walk; nobody logs where).
            extra = {"method": method, "route": route, "status": status, "duration_ms": elapsed * 1000}
            args = (method, scope.get("path", ""), status)
            record = _access.makeRecord(
                _access.name, logging.INFO, "", 0, _ACCESS_FORMAT, args, None, None, extra
            )
            _access.handle(record)

    async def _preflight(self, scope: Scope, send: Send, allow_origin: str, request_id: str) -> None:
        requested = scope_header(scope, b"access-control-request-headers") or ""
        headers = [
            (b"access-control-allow-origin", allow_origin.encode()),
            (b"access-control-allow-methods", b"GET, POST, PUT, PATCH, DELETE, OPTIONS"),
            (b"access-control-max-age", b"600"),
            (b"vary", b"Origin"),
            (b"x-request-id", request_id.encode()),
            (b"content-length", b"0"),
        ]
        if requested:
            headers.append((b"access-control-allow-headers", requested.encode("latin-1")))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        with trio.CancelScope(shield=True):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_problem(
        self, scope: Scope, send: Send, extra: list[tuple[bytes, bytes]], error: ApiError
    ) -> None:
        with trio.CancelScope(shield=True):
            await send_problem(send, scope, error, extra)
