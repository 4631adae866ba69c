"""DESIGN §7 bug: Quart-Trio on hypercorn-trio left `Connection: close` connections open. Clients reading
to EOF must get EOF — for a request that asks for it, for error answers, and when Hypercorn itself closes
after keep_alive_max_requests."""

from __future__ import annotations

import pytest

from .auth_helpers import auth_headers
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


async def test_a_stay_dispatch_handed_to_quart_with_connection_close_gets_eof(start_node: StartNode) -> None:
    running = await start_node()
    headers = await auth_headers(running, "operator")
    body = b'{"core_id": "EOF", "stay": true, "wait": 0.01}'
    request = (
        b"POST /dispatch HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\n"
        + f"Authorization: {headers['Authorization']}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    data, eof = await raw_exchange(running.url, request, limit=3.0)
    assert data.startswith(b"HTTP/1.1 200"), data
    assert b'"finished":false' in data.replace(b" ", b"")
    assert eof, "server kept the connection open after a stay dispatch with Connection: close"
