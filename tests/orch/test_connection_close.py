"""DESIGN §7 bug: Quart-Trio on hypercorn-trio left `Connection: close` connections open. Clients reading
to EOF must get EOF — for a request that asks for it, for error answers, and when Hypercorn itself closes
after keep_alive_max_requests."""

from __future__ import annotations

import pytest

from .helpers import StartNode, raw_exchange

pytestmark = pytest.mark.integration

CLOSE = b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


async def test_connection_close_request_gets_eof(start_node: StartNode) -> None:
    running = await start_node()
    data, eof = await raw_exchange(running.url, CLOSE, limit=3.0)
    assert data.startswith(b"HTTP/1.1 200")
    assert b'"status":"healthy"' in data
    assert eof, "server kept the connection open after Connection: close"


async def test_connection_close_on_an_error_answer_gets_eof(start_node: StartNode) -> None:
    running = await start_node()
    request = b"GET /missing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    data, eof = await raw_exchange(running.url, request, limit=3.0)
    assert data.startswith(b"HTTP/1.1 404")
    assert eof


async def test_keep_alive_limit_closes_with_eof(start_node: StartNode) -> None:
    running = await start_node(**{"server.keep_alive_max_requests": 2})
    keep = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
    data, eof = await raw_exchange(running.url, keep * 2, limit=3.0)
    assert data.count(b"HTTP/1.1 200") == 2
    assert b"connection: close" in data.lower()
    assert eof


async def test_keep_alive_connection_stays_open_without_close(start_node: StartNode) -> None:
    running = await start_node(**{"server.keep_alive_timeout": 10.0})
    data, eof = await raw_exchange(running.url, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n", limit=0.5)
    assert data.startswith(b"HTTP/1.1 200")
    assert not eof  # the control: the helper really does detect an open connection
