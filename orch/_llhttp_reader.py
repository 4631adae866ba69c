"""The request side of `LlhttpProtocol`: llhttp's callbacks turned into a queue of items (heads, body
pieces, ends, websocket bytes, failures) in the order the client sent them."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final, TypeAlias

import httptools
from hypercorn.protocol.events import Body, Data, EndBody, Request
from hypercorn.typing import ConnectionState

__all__ = ["STREAM_ID", "Failure", "Head", "Item", "RequestReader"]

STREAM_ID: Final = 1


@dataclass(slots=True)
class Head:
    """A request's head, read whole."""

    method: str
    target: bytes
    http_version: str
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    websocket: bool
    expects_continue: bool  # until body bytes arrive

    def request(self, stream_id: int, state: ConnectionState) -> Request:
        """Hypercorn's event for it."""
        return Request(
            stream_id=stream_id,
            headers=self.headers,
            http_version=self.http_version,
            method=self.method,
            raw_path=self.target,
            state=state,
        )


@dataclass(frozen=True, slots=True)
class Failure:
    """The client broke HTTP/1.1 here: answer `status` (unless an answer is under way), then close."""

    status: int


Item: TypeAlias = Head | Failure | Body | EndBody | Data


class _Rejected(Exception):
    pass


class RequestReader:
    """Feeds bytes to llhttp and queues what it reads on `items`. After a failure it reads nothing more;
    after a websocket upgrade every byte is websocket data."""

    def __init__(self, items: deque[Item], *, max_head: int, raw_header_names: bool) -> None:
        self._items = items
        self._max_head = max_head
        self._lower_names = not raw_header_names
        self._parser = httptools.HttpRequestParser(self)
        self._failed = False
        self._passthrough = False
        self._messages = 0
        self._in_head = False
        self._in_message = False
        self._head_size = 0  # bytes of the head's URL and finished header lines
        self._unfinished_head = 0  # bytes fed while one head stayed unfinished
        self._rejection = 400
        self._current: Head | None = None
        self._reset_head()

    def _reset_head(self) -> None:
        self._url: list[bytes] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._hosts = 0
        self._expect_continue = False
        self._upgrade_websocket = False
        self._connection_upgrade = False

    def feed(self, data: bytes) -> None:
        """Read `data` (not empty)."""
        if self._failed:
            return
        if self._passthrough:
            self._items.append(Data(stream_id=STREAM_ID, data=data))
            return
        messages, in_head, in_message = self._messages, self._in_head, self._in_message
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgraded(data[upgrade.args[0] :])
        except httptools.HttpParserError:
            self._fail(self._rejection)
        else:
            if self._in_head:
                self._count_unfinished_head(len(data), messages, in_head, in_message)

    def _count_unfinished_head(self, fed: int, messages: int, in_head: bool, in_message: bool) -> None:
        # llhttp keeps a header line it has not seen the end of, so the callbacks do not see every
        # byte of a head that has not ended: bound the bytes fed since it began, as h11 bounds its buffer.
        if in_head and messages == self._messages:  # the head went on through all of `data`
            self._unfinished_head += fed
        elif not in_message and messages + 1 == self._messages:  # it began with `data`
            self._unfinished_head = fed
        else:  # it began after another request in `data`: what the callbacks saw (the next feed counts whole)
            self._unfinished_head = self._head_size
        if self._unfinished_head > self._max_head:
            self._fail(431)

    def end_of_input(self) -> None:
        """The client closed its side: a request cut short is a failure."""
        if self._in_message and not self._failed and not self._passthrough:
            self._fail(400)

    def _fail(self, status: int) -> None:
        self._failed = True
        self._items.append(Failure(status))

    def _upgraded(self, rest: bytes) -> None:
        current = self._current
        if current is not None and current.websocket:
            self._passthrough = True
            if rest:
                self._items.append(Data(stream_id=STREAM_ID, data=rest))
            return
        # Any other upgrade (h2c, CONNECT) is not taken: what follows is the next HTTP/1.1 request.
        self._parser = httptools.HttpRequestParser(self)
        if rest:
            self.feed(rest)

    def _reject(self, status: int) -> None:
        self._rejection = status
        raise _Rejected

    # llhttp's callbacks (httptools looks them up by name)

    def on_message_begin(self) -> None:
        self._messages += 1
        self._in_head = self._in_message = True
        self._head_size = self._unfinished_head = 0
        self._reset_head()

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._head_size += len(url)
        if self._head_size > self._max_head:
            self._reject(431)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._max_head:
            self._reject(431)
        value = value.rstrip(b" \t")
        lowered = name.lower()
        if lowered == b"host":
            self._hosts += 1
        elif lowered == b"transfer-encoding" and value.lower() != b"chunked":
            self._reject(501)  # as h11: no other transfer coding is understood
        elif lowered == b"expect":
            self._expect_continue = value.lower() == b"100-continue"
        elif lowered == b"upgrade":
            self._upgrade_websocket = value.lower() == b"websocket"
        elif lowered == b"connection":
            self._connection_upgrade = any(t.strip() == b"upgrade" for t in value.lower().split(b","))
        self._headers.append((lowered if self._lower_names else name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0") or (version == "1.1" and self._hosts != 1):
            self._reject(400)  # as h11: HTTP/1.x only, and an HTTP/1.1 request names one Host
        method = parser.get_method().decode("ascii")
        head = Head(
            method=method,
            target=b"".join(self._url),
            http_version=version,
            headers=self._headers,
            keep_alive=version == "1.1" and parser.should_keep_alive(),
            websocket=(
                method == "GET"
                and self._upgrade_websocket
                and self._connection_upgrade
                and parser.should_upgrade()
            ),
            expects_continue=self._expect_continue and version == "1.1",
        )
        self._current = head
        self._items.append(head)

    def on_body(self, body: bytes) -> None:
        if self._current is not None:
            self._current.expects_continue = False
        self._items.append(Body(stream_id=STREAM_ID, data=body))

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._current is not None:
            self._current.expects_continue = False
        self._items.append(EndBody(stream_id=STREAM_ID))
