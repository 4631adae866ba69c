"""The lean load-generator HTTP client against a scripted in-process server (real sockets)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio

from bench.harness.rawhttp import HttpProtocolError, RawHttpConnection, parse_head

Answer = tuple[bytes, bool]  # raw answer bytes, close the connection after sending it
Serve = Callable[[list[Answer]], Awaitable[tuple[str, list[bytes]]]]


@pytest.fixture
def serve(nursery: trio.Nursery) -> Serve:
    """Start a server that answers each request with the next scripted answer; URL and requests seen."""

    async def start(answers: list[Answer]) -> tuple[str, list[bytes]]:
        seen: list[bytes] = []

        async def handler(stream: trio.SocketStream) -> None:
            buffer = b""
            while answers:
                while b"\r\n\r\n" not in buffer:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(buffer) < length:
                    buffer += await stream.receive_some(65536)
                seen.append(head + b"\r\n\r\n" + buffer[:length])
                buffer = buffer[length:]
                data, close = answers.pop(0)
                await stream.send_all(data)
                if close:
                    await stream.aclose()
                    return

        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        return f"http://127.0.0.1:{port}", seen

    return start


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def test_keep_alive_connection_is_reused_for_sequential_requests(serve: Serve) -> None:
    url, seen = await serve([(ok(b'{"n":1}'), False), (ok(b'{"n":2}'), False), (ok(b"{}"), False)])
    conn = RawHttpConnection(url, {"Authorization": "Bearer t"})
    first = await conn.request("GET", "/health")
    second = await conn.request("POST", "/x", b'{"a":1}', {"Content-Type": "application/json"})
    await conn.request("GET", "/y")
    await conn.aclose()
    assert (first.status, first.json(), second.json()) == (200, {"n": 1}, {"n": 2})
    assert conn.connects == 1
    assert seen[1].startswith(b"POST /x HTTP/1.1\r\n")
    assert b"Authorization: Bearer t\r\n" in seen[1]
    assert b"Content-Length: 7\r\n" in seen[1]
    assert seen[1].endswith(b'\r\n\r\n{"a":1}')


async def test_chunked_answer_is_reassembled(serve: Serve) -> None:
    chunked = (
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\n\r\n"
    )
    url, _ = await serve([(chunked, False), (ok(b"next"), False)])
    conn = RawHttpConnection(url)
    reply = await conn.request("GET", "/")
    after = await conn.request("GET", "/")
    await conn.aclose()
    assert (reply.status, reply.body, after.body) == (201, b"abcdefg", b"next")


async def test_connection_close_answer_makes_the_next_request_reconnect(serve: Serve) -> None:
    url, seen = await serve([(ok(b"a", b"Connection: close\r\n"), True), (ok(b"b"), False)])
    conn = RawHttpConnection(url)
    assert (await conn.request("GET", "/")).body == b"a"
    assert (await conn.request("GET", "/")).body == b"b"
    await conn.aclose()
    assert conn.connects == 2
    assert len(seen) == 2


async def test_idle_connection_closed_by_server_is_retried_once_on_a_new_one(serve: Serve) -> None:
    # The server closes after its answer without saying so (like a keep-alive timeout).
    url, seen = await serve([(ok(b"a"), True), (ok(b"b"), False)])
    conn = RawHttpConnection(url)
    await conn.request("GET", "/")
    await trio.sleep(0.05)
    assert (await conn.request("GET", "/")).body == b"b"
    await conn.aclose()
    assert conn.connects == 2
    assert len(seen) == 2


async def test_answer_cut_mid_body_is_a_protocol_error(serve: Serve) -> None:
    url, _ = await serve([(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", True)])
    conn = RawHttpConnection(url)
    with pytest.raises(HttpProtocolError, match="mid-answer"):
        await conn.request("GET", "/")


async def test_answer_without_length_is_read_to_eof(serve: Serve) -> None:
    url, _ = await serve([(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\neverything", True)])
    conn = RawHttpConnection(url)
    reply = await conn.request("GET", "/")
    assert (reply.body, reply.headers["x-a"]) == (b"everything", "1")


def test_head_parser_lowercases_and_joins_repeated_headers() -> None:
    status, headers = parse_head(b"HTTP/1.1 404 Not Found\r\nSet-Cookie: a\r\nset-cookie: b\r\nX-Y:z")
    assert status == 404
    assert headers == {"set-cookie": "a, b", "x-y": "z"}
    with pytest.raises(HttpProtocolError):
        parse_head(b"SPDY/3 200 OK")


def test_only_loopback_targets_are_accepted() -> None:
    with pytest.raises(ValueError, match="only ever sent"):
        RawHttpConnection("http://10.1.2.3:80")
