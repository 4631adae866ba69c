"""A lean HTTP/1.1 keep-alive client on a trio TCP stream, for load generation.

httpx costs ~1.1 ms of client CPU per request on this box against ~0.2 ms for this client (measured
side by side, bench/README.md); on a 2-core machine that shares its cores with the server, an httpx
load generator saturates before a hello-world server does. This client does only what the load needs:
one request at a time per connection, Content-Length or chunked bodies, reconnect when the server
closes (`Connection: close`, e.g. after Hypercorn's 1,000 requests per connection). A connection idle
for `IDLE_REOPEN` seconds is reopened before use (the server's keep-alive timeout may have closed it);
an idempotent request on a reused connection that closes before any answer byte is retried once.
A POST is never retried: it may have been processed, and a retry would hide or duplicate that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import trio

from bench.harness.safety import check_loopback

__all__ = ["HttpProtocolError", "RawHttpConnection", "Reply", "parse_head"]

_MAX_HEAD = 64 * 1024
IDLE_REOPEN = 2.0  # below Hypercorn's default 5 s keep-alive timeout
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class HttpProtocolError(Exception):
    """The server's answer could not be parsed, or the connection closed mid-answer."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete answer: status, lower-cased headers, body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def status_code(self) -> int:
        """httpx's name for `status`, so ops can treat both clients alike."""
        return self.status

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers of a response head (without the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HttpProtocolError(f"bad status line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpProtocolError(f"bad header line {line!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return int(parts[1]), headers


class RawHttpConnection:
    """One keep-alive connection to `base_url` (loopback only), opened lazily, reopened when closed."""

    def __init__(self, base_url: str, headers: Mapping[str, str] | None = None) -> None:
        check_loopback(base_url)
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"need http://host:port, got {base_url!r}")
        self._host, self._port = parts.hostname, parts.port
        fixed = {"Host": f"{parts.netloc}", "User-Agent": "orch-bench", **(headers or {})}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._stream: trio.SocketStream | None = None
        self._buffer = bytearray()
        self._used = False  # answered at least once: a close before any byte may be a stale keep-alive
        self._last_used = 0.0
        self.connects = 0
        self.retries = 0

    async def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Reply:
        """Send one request and read its whole answer."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        length = f"Content-Length: {len(body)}\r\n" if body is not None else ""
        data = f"{method} {path} HTTP/1.1\r\n{self._fixed}{extra}{length}\r\n".encode("latin-1") + (
            body or b""
        )
        if self._stream is not None and trio.current_time() - self._last_used > IDLE_REOPEN:
            self._abort()
        for attempt in (0, 1):
            reused = self._used
            try:
                stream = await self._connect()
                await stream.send_all(data)
                reply = await self._read_reply(method)
            except (trio.BrokenResourceError, trio.ClosedResourceError, _ClosedEarly) as exc:
                self._abort()
                stale = isinstance(exc, _ClosedEarly | trio.BrokenResourceError)
                if attempt == 0 and reused and stale and method in _IDEMPOTENT:
                    self.retries += 1
                    continue
                raise HttpProtocolError(f"connection closed: {exc!r}") from None
            except BaseException:
                self._abort()  # cancelled or failed mid-answer: the stream's state is unknown
                raise
            self._used = True
            self._last_used = trio.current_time()
            if reply.headers.get("connection", "").lower() == "close":
                self._abort()
            return reply
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close the connection (the next request opens a new one)."""
        self._abort()
        await trio.lowlevel.checkpoint()

    def _abort(self) -> None:
        stream, self._stream = self._stream, None
        self._buffer.clear()
        self._used = False
        if stream is not None:
            stream.socket.close()

    async def _connect(self) -> trio.SocketStream:
        if self._stream is None:
            self._stream = await trio.open_tcp_stream(self._host, self._port)
            self.connects += 1
        return self._stream

    async def _fill(self, *, first: bool = False) -> None:
        assert self._stream is not None
        chunk = await self._stream.receive_some(65536)
        if not chunk:
            raise _ClosedEarly() if first else HttpProtocolError("connection closed mid-answer")
        self._buffer += chunk

    async def _read_reply(self, method: str) -> Reply:
        buf = self._buffer
        first = True
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if len(buf) > _MAX_HEAD:
                raise HttpProtocolError("response head too large")
            await self._fill(first=first and not buf)
            first = False
        status, headers = parse_head(bytes(buf[:end]))
        del buf[: end + 4]
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return Reply(status, headers, b"")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return Reply(status, headers, await self._read_chunked())
        if "content-length" in headers:
            return Reply(status, headers, await self._read_exactly(int(headers["content-length"])))
        return Reply(status, headers, await self._read_to_eof())

    async def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            await self._fill()
        body = bytes(self._buffer[:size])
        del self._buffer[:size]
        return body

    async def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            while (eol := self._buffer.find(b"\r\n")) < 0:
                await self._fill()
            size = int(bytes(self._buffer[:eol]).split(b";")[0], 16)
            del self._buffer[: eol + 2]
            if size == 0:
                while (eol := self._buffer.find(b"\r\n")) != 0:  # trailers, then the blank line
                    if eol < 0:
                        await self._fill()
                    else:
                        del self._buffer[: eol + 2]
                del self._buffer[:2]
                return bytes(out)
            out += await self._read_exactly(size)
            await self._read_exactly(2)

    async def _read_to_eof(self) -> bytes:
        assert self._stream is not None
        while chunk := await self._stream.receive_some(65536):
            self._buffer += chunk
        body = bytes(self._buffer)
        self._abort()
        return body


class _ClosedEarly(Exception):
    """EOF before the first byte of an answer."""
