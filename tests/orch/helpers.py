"""Raw-socket helpers for the node tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from orch.server import RunningNode

StartNode = Callable[..., Awaitable[RunningNode]]
"""The `start_node` fixture: `await start_node(routers=[...], **{"server.max_body_bytes": 100})`."""


def port_of(url: str) -> int:
    """The port of `http://127.0.0.1:PORT`."""
    return int(url.rsplit(":", 1)[1])


async def raw_exchange(url: str, request: bytes, *, limit: float = 5.0) -> tuple[bytes, bool]:
    """Send raw bytes, read until EOF; returns (data, eof_seen). eof_seen False = server kept it open."""
    stream = await trio.open_tcp_stream("127.0.0.1", port_of(url))
    data = b""
    async with stream:
        await stream.send_all(request)
        with trio.move_on_after(limit):
            while chunk := await stream.receive_some(65536):
                data += chunk
            return data, True
    return data, False
