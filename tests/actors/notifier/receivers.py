"""Tiny local receivers for notifier tests: an HTTP/1.1 server and an SMTP server, both raw Trio sockets.

Written here on purpose (no third-party server), so the tests check what actually goes over the wire.
"""

from __future__ import annotations

import email
import email.policy
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import partial

import trio

MAX_HEADER = 64 * 1024


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass(frozen=True, slots=True)
class Scripted:
    """One canned answer; ``delay`` makes the endpoint slow."""

    status: int = 200
    body: bytes = b"ok"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0


@dataclass(slots=True)
class HttpReceiver:
    """Records requests; answers from ``script`` (in order), then with ``default``."""

    port: int = 0
    requests: list[HttpRequest] = field(default_factory=list)
    script: deque[Scripted] = field(default_factory=deque)
    default: Scripted = field(default_factory=Scripted)
    arrived: trio.Event = field(default_factory=trio.Event)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def wait_for(self, count: int) -> list[HttpRequest]:
        while len(self.requests) < count:
            self.arrived = trio.Event()
            await self.arrived.wait()
        return self.requests

    async def serve(self, stream: trio.SocketStream) -> None:
        buffer = b""
        async with stream:
            while True:
                parsed = await _read_request(stream, buffer)
                if parsed is None:
                    return
                request, buffer = parsed
                self.requests.append(request)
                self.arrived.set()
                answer = self.script.popleft() if self.script else self.default
                await trio.sleep(answer.delay)
                await stream.send_all(_response(answer))


async def _read_request(stream: trio.SocketStream, buffer: bytes) -> tuple[HttpRequest, bytes] | None:
    while b"\r\n\r\n" not in buffer:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        buffer += chunk
        assert len(buffer) < MAX_HEADER
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(buffer) < length:
        chunk = await stream.receive_some(65536)
        assert chunk, "client closed mid-body"
        buffer += chunk
    return HttpRequest(method, path, headers, buffer[:length]), buffer[length:]


def _response(answer: Scripted) -> bytes:
    head = [f"HTTP/1.1 {answer.status} X", f"content-length: {len(answer.body)}"]
    head += [f"{k}: {v}" for k, v in answer.headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + answer.body


@asynccontextmanager
async def http_receiver() -> AsyncIterator[HttpReceiver]:
    """Serve an `HttpReceiver` on 127.0.0.1 for the duration of the block."""
    receiver = HttpReceiver()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, receiver.serve, 0, host="127.0.0.1"))
        receiver.port = listeners[0].socket.getsockname()[1]
        yield receiver
        nursery.cancel_scope.cancel()


# --- SMTP --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class SmtpReceiver:
    """A minimal SMTP server (RFC 5321 subset: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT)."""

    port: int = 0
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    reject_rcpt_with: int | None = None  # e.g. 450 (transient) or 550 (permanent)
    connections: int = 0
    arrived: trio.Event = field(default_factory=trio.Event)

    async def wait_for(self, count: int) -> list[tuple[str, list[str], EmailMessage]]:
        while len(self.messages) < count:
            self.arrived = trio.Event()
            await self.arrived.wait()
        return self.messages

    async def serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        lines = _LineReader(stream)
        sender, rcpts = "", []
        async with stream:
            await stream.send_all(b"220 test-smtp ready\r\n")
            while (line := await lines.readline()) is not None:
                verb = line[:4].upper()
                if verb in ("EHLO", "HELO"):
                    await stream.send_all(b"250-test-smtp\r\n250 8BITMIME\r\n")
                elif verb == "MAIL":
                    sender, rcpts = line.split(":", 1)[1].strip(" <>"), []
                    await stream.send_all(b"250 ok\r\n")
                elif verb == "RCPT":
                    if self.reject_rcpt_with is not None:
                        await stream.send_all(f"{self.reject_rcpt_with} no\r\n".encode())
                        continue
                    rcpts.append(line.split(":", 1)[1].strip(" <>"))
                    await stream.send_all(b"250 ok\r\n")
                elif verb == "DATA":
                    await stream.send_all(b"354 go ahead\r\n")
                    data = await lines.read_data()
                    parsed = email.message_from_bytes(data, policy=email.policy.default)
                    assert isinstance(parsed, EmailMessage)
                    self.messages.append((sender, rcpts, parsed))
                    self.arrived.set()
                    await stream.send_all(b"250 queued\r\n")
                elif verb == "QUIT":
                    await stream.send_all(b"221 bye\r\n")
                    return
                else:
                    await stream.send_all(b"250 ok\r\n")


class _LineReader:
    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._buffer = b""

    async def readline(self) -> str | None:
        raw = await self._raw_line()
        return None if raw is None else raw.decode("latin-1")

    async def _raw_line(self) -> bytes | None:
        while b"\r\n" not in self._buffer:
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    async def read_data(self) -> bytes:
        out = []
        while (line := await self._raw_line()) is not None and line != b".":
            out.append(line[1:] if line.startswith(b"..") else line)
        return b"\r\n".join(out) + b"\r\n"


@asynccontextmanager
async def smtp_receiver() -> AsyncIterator[SmtpReceiver]:
    """Serve an `SmtpReceiver` on 127.0.0.1 for the duration of the block."""
    receiver = SmtpReceiver()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, receiver.serve, 0, host="127.0.0.1"))
        receiver.port = listeners[0].socket.getsockname()[1]
        yield receiver
        nursery.cancel_scope.cancel()
