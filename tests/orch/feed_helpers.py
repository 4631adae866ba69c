"""Helpers for the feed tests (SSE, websockets, `orch events`): produce events through the real event log,
and a raw-socket SSE reader (HTTP/1.1, chunked decoding, SSE parsing) that can be cut off mid-stream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import trio

from actors.storage import StoredEvent, Tx
from orch.feeds.client import SseComment, SseMessage, SseParser
from orch.server import RunningNode

from .helpers import port_of


@dataclass(frozen=True, slots=True)
class Spec:
    """An event to emit."""

    type: str = "test.tick"
    subject: str | None = None
    core_id: str | None = None


async def emit(node: RunningNode, specs: Sequence[Spec] | int, **data: Any) -> list[StoredEvent]:
    """Commit events in ONE write (one batch, published together); `specs` may be a count of test.tick."""
    items = [Spec() for _ in range(specs)] if isinstance(specs, int) else list(specs)

    def op(tx: Tx) -> list[StoredEvent]:
        return [
            tx.emit(s.type, subject=s.subject, core_id=s.core_id, data={"i": i, **data})
            for i, s in enumerate(items)
        ]

    return await node.node.database().write(op)


Frame = SseMessage | SseComment


class RawSse:
    """One SSE response read off a raw socket: `status`, `headers`, then frames via `next()`.

    `chunks` counts HTTP body chunks (one server write each), so a test can see writes coalesce.
    """

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.eof = False
        self._raw = b""
        self._text = ""
        self._parser = SseParser()
        self._frames: list[Frame] = []

    @classmethod
    async def open(
        cls,
        url: str,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        path: str = "/sse/events",
    ) -> RawSse:
        """Connect, send the GET, read the response head."""
        stream = await trio.open_tcp_stream("127.0.0.1", port_of(url))
        target = f"{path}?{urlencode(dict(query))}" if query else path
        lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
        sse = cls(stream)
        await sse._read_head()
        return sse

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self._raw += data

    async def _line(self) -> bytes:
        while b"\r\n" not in self._raw:
            await self._fill()
        line, _, self._raw = self._raw.partition(b"\r\n")
        return line

    async def _exact(self, n: int) -> bytes:
        while len(self._raw) < n:
            await self._fill()
        data, self._raw = self._raw[:n], self._raw[n:]
        return data

    async def _read_head(self) -> None:
        status_line = await self._line()
        self.status = int(status_line.split()[1])
        while line := await self._line():
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()

    async def body(self) -> bytes:
        """The whole (non-streaming) body of an error response."""
        length = self.headers.get("content-length")
        if length is not None:
            return await self._exact(int(length))
        data = b""
        while chunk := await self._chunk():
            data += chunk
        return data

    async def _chunk(self) -> bytes:
        size = int((await self._line()).split(b";")[0], 16)
        if size == 0:
            await self._line()
            self.eof = True
            return b""
        data = await self._exact(size)
        await self._exact(2)
        self.chunks.append(data)
        return data

    async def next(self) -> Frame:
        """The next message or comment (EOFError once the stream has ended)."""
        while not self._frames:
            if self.eof:
                raise EOFError("the stream ended")
            self._text += (await self._chunk()).decode()
            *lines, self._text = self._text.split("\n")
            for line in lines:
                item = self._parser.feed(line)
                if item is not None:
                    self._frames.append(item)
        return self._frames.pop(0)

    async def next_message(self) -> SseMessage:
        """The next message, skipping comments."""
        while True:
            frame = await self.next()
            if isinstance(frame, SseMessage):
                return frame

    async def wait_comment(self, text: str) -> None:
        """Read until the comment `text` (e.g. "live"); messages before it are an error."""
        while True:
            frame = await self.next()
            if isinstance(frame, SseComment) and frame.text == text:
                return
            assert isinstance(frame, SseComment), f"unexpected message before ': {text}': {frame}"

    @property
    def last_event_id(self) -> str | None:
        """The stream's Last-Event-ID so far (None before any `id:`), as a browser would keep it."""
        return self._parser.last_event_id or None

    async def aclose(self) -> None:
        """Drop the connection (abruptly, mid-stream if need be)."""
        await self.stream.aclose()

    async def __aenter__(self) -> RawSse:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def seq_of(message: SseMessage) -> int:
    """The seq of an event message (its `id:`, which must match the data's seq)."""
    assert message.id is not None
    data = json.loads(message.data)
    assert data["seq"] == int(message.id)
    return int(message.id)
