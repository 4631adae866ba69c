"""HTTP/1.1 for Hypercorn's server, parsed by llhttp (Node.js's parser, through `httptools`) instead of h11.

Hypercorn speaks HTTP/1.1 through `H11Protocol`, which runs every request and response through h11's
pure-Python state machine: about 13 % of the node's main thread on `POST /dispatch`, with Hypercorn's
own glue around it as much again (DESIGN §7). `LlhttpProtocol` is the same protocol object: it turns
bytes into the events Hypercorn's `HTTPStream` and `WSStream` take, and their events into bytes; the
parsing happens in C, and a response's head goes out with its first body bytes, in one write (ASGI
lets a server hold the head until the first body message).

It keeps h11's rules where a client can see them: one exchange at a time (pipelined requests wait,
and reading stops, until the answer before them is done); `Expect: 100-continue` answered when the
app is started; the same statuses for bad input (400, 431 for a head over
`h11_max_incomplete_size`, 501 for a transfer coding other than chunked), each followed by a close;
HTTP/1.0 clients get no chunked encoding and no keep-alive; a response whose request was not read to
its end closes the connection; `keep_alive_max_requests` answers with `connection: close`. Response
headers that would split the head (CR, LF, NUL) are refused. Two differences on purpose: the status
line carries the reason phrase, and an `Upgrade` other than websocket (`h2c`) is ignored, which
HTTP allows: the request is answered over HTTP/1.1 (Hypercorn would switch to HTTP/2, which orch
does not offer). A connection that opens with HTTP/2's preface still goes to Hypercorn's HTTP/2.

`install()` makes Hypercorn build `LlhttpProtocol` for HTTP/1.1 connections (a module attribute of
`hypercorn.protocol`); it leaves Hypercorn alone when that is not as expected.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Final

import hypercorn.protocol as hypercorn_protocol
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.events import Body, Data, EndBody, Response, StreamClosed
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h11 import H2ProtocolAssumedError, H11Protocol
from hypercorn.protocol.http_stream import HTTPStream
from hypercorn.protocol.ws_stream import WSStream
from hypercorn.typing import AppWrapper, ConnectionState, TaskGroup, WorkerContext

from orch._llhttp_reader import STREAM_ID, Failure, Head, Item, RequestReader

__all__ = ["LlhttpProtocol", "ResponseFramingError", "install"]

_log = logging.getLogger("orch.server")

_H2_PREFACE: Final = b"PRI * HTTP/2.0\r\n"
_BIG_BODY: Final = 16 * 1024  # larger bodies are not copied to join them to the head

# How a response body is delimited.
_NO_BODY: Final = 0  # HEAD, 204, 304: whatever the headers say, no body bytes follow
_LENGTH: Final = 1  # Content-Length
_CHUNKED: Final = 2  # Transfer-Encoding: chunked
_UNTIL_CLOSE: Final = 3  # HTTP/1.0 client, no Content-Length: the close ends the body


def _status_line(status: int) -> bytes:
    try:
        reason = HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        reason = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, reason)


_STATUS_LINES: Final = {status.value: _status_line(status.value) for status in HTTPStatus}


class ResponseFramingError(Exception):
    """The app's response breaks HTTP/1.1 framing: a header with CR, LF or NUL, a bad Content-Length,
    or a body longer or shorter than its Content-Length. The connection closes after the response."""


class LlhttpProtocol:
    """Hypercorn's HTTP/1.1 protocol (`H11Protocol`'s interface: `initiate`, `handle`, `stream_send`)
    on llhttp; see the module."""

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        context: WorkerContext,
        task_group: TaskGroup,
        connection_state: ConnectionState,
        ssl: bool,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        send: Callable[[Event], Awaitable[None]],
    ) -> None:
        self.app = app
        self.config = config
        self.context = context
        self.task_group = task_group
        self.connection_state = connection_state
        self.ssl = ssl
        self.client = client
        self.server = server
        self.send = send
        self.can_read = context.event_class()
        self.keep_alive_requests = 0
        self._pending: deque[Item] = deque()
        self._reader = RequestReader(
            self._pending,
            max_head=config.h11_max_incomplete_size,
            raw_header_names=config.h11_pass_raw_headers,
        )
        self._stream: HTTPStream | WSStream | None = None
        self._first_data = True
        self._closed = False
        self._websocket = False  # bytes pass through to a WSStream
        self._websocket_accepted = False
        # The exchange under way.
        self._request_done = False
        self._response_started = False
        self._response_done = False
        self._keep_alive = False
        self._head_request = False
        self._http10 = False
        # The response under way.
        self._held_head: bytes | None = None
        self._framing = _NO_BODY
        self._remaining = 0

    async def initiate(self) -> None:
        """Nothing to send first (HTTP/1.1's client speaks first)."""

    async def handle(self, event: Event) -> None:
        """Bytes from the client (`RawData`; empty at EOF) or the connection's end (`Closed`)."""
        if type(event) is RawData:
            await self._receive(event.data)
        elif isinstance(event, Closed):
            self._closed = True
            await self._close_stream()
            await self.can_read.set()  # a reader waiting for the exchange before it may go

    async def _receive(self, data: bytes) -> None:
        if self._closed:
            return
        if self._first_data:
            self._first_data = False
            if data.startswith(_H2_PREFACE):
                raise H2ProtocolAssumedError(data)  # Hypercorn's wrapper switches to HTTP/2
        if not data:
            self._reader.end_of_input()
        else:
            self._reader.feed(data)
        await self._handle_pending()

    async def _handle_pending(self) -> None:
        pending = self._pending
        while pending and not self._closed:
            item = pending[0]
            if self._must_wait(item):
                await self.can_read.clear()  # and read no more meanwhile
                await self.can_read.wait()
                continue
            pending.popleft()
            match item:
                case Failure(status=status):
                    await self._fail(status)
                    return
                case Head():
                    await self._start(item)
                case _:
                    await self._deliver(item)

    def _must_wait(self, item: Item) -> bool:
        """Whether `item` waits for the exchange under way: a pipelined request (or its failure) until that
        exchange ends; frames sent right behind a websocket upgrade until the app accepts it (a WSStream
        answers frames before the accept with 400)."""
        if self._stream is None:
            return False
        match item:
            case Head():
                return True
            case Failure():
                return self._request_done  # else it is the failure of the request under way
            case Data():
                return not self._websocket_accepted
            case _:
                return False

    async def _deliver(self, item: Body | EndBody | Data) -> None:
        if type(item) is EndBody:
            self._request_done = True
            if self._websocket:
                return  # the upgrade request's end: a WSStream only takes frames from here on
        if self._stream is not None:
            await self._stream.handle(item)

    async def _start(self, head: Head) -> None:
        self._request_done = self._response_started = self._response_done = False
        self._keep_alive = head.keep_alive
        self._head_request = head.method == "HEAD"
        self._http10 = head.http_version == "1.0"
        await self.send(Updated(idle=False))
        self._websocket = head.websocket
        kind: type[HTTPStream] | type[WSStream] = WSStream if head.websocket else HTTPStream
        stream = kind(
            self.app,
            self.config,
            self.context,
            self.task_group,
            self.ssl,
            self.client,
            self.server,
            self.stream_send,
            STREAM_ID,
        )
        self._stream = stream
        request = head.request(STREAM_ID, self.connection_state)
        await stream.handle(request)
        self.keep_alive_requests += 1
        await self.context.mark_request()
        if head.expects_continue and not self._response_started:
            await self.send(RawData(self._head_bytes(100, [])))

    async def _fail(self, status: int) -> None:
        if not self._response_started:
            headers = [(b"content-length", b"0"), (b"connection", b"close")]
            await self.send(RawData(self._head_bytes(status, headers)))
            self._response_started = True
        await self.send(Closed())

    async def stream_send(self, event: StreamEvent) -> None:
        """An event of the exchange's stream: the response (head, body, end), websocket bytes, or its end."""
        if self._closed:
            return
        match event:
            case Body(data=data):
                await self._send_body(data)
            case Response():
                await self._begin_response(event)
            case EndBody():
                await self._end_body()
            case Data(data=data):
                await self.send(RawData(data))
            case StreamClosed():
                await self._end_exchange()
            case _:
                pass  # InformationalResponse (103), Trailers, EndData: nothing for HTTP/1.1

    async def _begin_response(self, response: Response) -> None:
        status = response.status_code
        if status < 200:  # 101 (websocket accepted): out at once, the client waits for it
            head = self._head_bytes(status, response.headers)
            await self.send(RawData(head))
            if status == 101:
                self._websocket_accepted = True
                await self.can_read.set()
            return
        self._response_started = True
        headers = self._framed_headers(status, response.headers)
        self._held_head = self._head_bytes(status, headers)

    def _framed_headers(self, status: int, given: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        headers: list[tuple[bytes, bytes]] = []
        length: bytes | None = None
        chunked = close = False
        for name, value in given:
            lowered = name.lower()
            if lowered == b"content-length":
                length = value
            elif lowered == b"transfer-encoding":
                chunked = True
                continue
            elif lowered == b"connection":
                close = close or b"close" in value.lower()
                continue
            headers.append((name, value))
        framing = self._framing_for(status, length, chunked)
        if framing in (_CHUNKED, _UNTIL_CLOSE):  # a Content-Length beside a transfer coding is dropped
            headers = [h for h in headers if h[0].lower() != b"content-length"]
        if framing == _CHUNKED:
            headers.append((b"transfer-encoding", b"chunked"))
        # A HEAD answer's headers are the GET's (h11's rule), but no body bytes follow any HEAD answer.
        self._framing = _NO_BODY if self._head_request else framing
        keep_alive = (
            self._keep_alive
            and not close
            and framing != _UNTIL_CLOSE
            and self.keep_alive_requests < self.config.keep_alive_max_requests
            and not self.context.terminated.is_set()
        )
        self._keep_alive = keep_alive
        if not keep_alive:
            headers.append((b"connection", b"close"))
        return headers

    def _framing_for(self, status: int, length: bytes | None, chunked: bool) -> int:
        if status in (204, 304):
            return _NO_BODY
        if not chunked and length is not None:
            try:
                self._remaining = int(length)
            except ValueError:
                raise ResponseFramingError(f"bad Content-Length {length!r}") from None
            if self._remaining < 0:
                raise ResponseFramingError(f"bad Content-Length {length!r}")
            return _LENGTH
        # No length: chunked for an HTTP/1.1 client, the close for HTTP/1.0 (no chunked encoding there).
        return _UNTIL_CLOSE if self._http10 else _CHUNKED

    def _head_bytes(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The status line, `headers`, then the server's own (Date, ...), as bytes."""
        lines = [_STATUS_LINES.get(status) or _status_line(status)]
        lines.extend(b"%s: %s\r\n" % header for header in headers)
        lines.extend(b"%s: %s\r\n" % header for header in self.config.response_headers("h11"))
        lines.append(b"\r\n")
        head = b"".join(lines)
        # Each line ends in the only CR and LF it may hold: one more would split the head.
        if head.count(b"\n") != len(lines) or head.count(b"\r") != len(lines) or b"\0" in head:
            self._keep_alive = False
            raise ResponseFramingError("a response header holds CR, LF or NUL")
        return head

    async def _send_body(self, data: bytes) -> None:
        framing = self._framing
        if framing == _LENGTH:
            self._remaining -= len(data)
            if self._remaining < 0:
                self._keep_alive = False
                raise ResponseFramingError("more body than its Content-Length")
        elif framing == _CHUNKED:
            data = b"%x\r\n%s\r\n" % (len(data), data) if data else b""
        elif framing == _NO_BODY:
            data = b""
        await self._write(data)

    async def _end_body(self) -> None:
        self._response_done = True
        if self._framing == _LENGTH and self._remaining > 0:
            self._keep_alive = False  # the client waits for bytes that will not come: only a close ends it
            await self._write(b"")
            raise ResponseFramingError("less body than its Content-Length")
        await self._write(b"0\r\n\r\n" if self._framing == _CHUNKED else b"")

    async def _write(self, data: bytes) -> None:
        head = self._held_head
        if head is not None:
            self._held_head = None
            if len(data) > _BIG_BODY:
                await self.send(RawData(head))
            else:
                data = head + data
        if data:
            await self.send(RawData(data))

    async def _end_exchange(self) -> None:
        await self._close_stream()
        reusable = (
            self._keep_alive
            and self._request_done
            and self._response_done
            and not self._websocket
            and not self.context.terminated.is_set()
        )
        self._held_head = None
        await self.can_read.set()
        if reusable:
            await self.send(Updated(idle=True))
        else:
            await self.send(Closed())

    async def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.handle(StreamClosed(stream_id=STREAM_ID))


def install() -> bool:
    """Serve HTTP/1.1 with `LlhttpProtocol` from now on (idempotent); False if Hypercorn's protocol
    wrapper is not as expected."""
    current = getattr(hypercorn_protocol, "H11Protocol", None)
    if current is LlhttpProtocol:
        return True
    if current is not H11Protocol:
        _log.warning("hypercorn's HTTP/1.1 protocol is not the one orch knows: keeping h11")
        return False
    setattr(hypercorn_protocol, "H11Protocol", LlhttpProtocol)  # noqa: B010 (not a re-export mypy knows)
    return True
