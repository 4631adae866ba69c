"""`IdleTimer` keeps Hypercorn's keep-alive rules with one watcher per connection: an idle connection
closes after `keep_alive_timeout` or at once when the server stops; a running request is never cut."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import pytest
import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.events import RawData
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import EventWrapper

from orch.keepalive import DIRECT_WRITES, IdleTimer, OrchTaskGroup, OrchTCPServer, install

from .auth_helpers import auth_headers
from .helpers import StartNode

TIMEOUT = 5.0


@dataclass
class FakeServer:
    """What `IdleTimer` uses of Hypercorn's `TCPServer`."""

    closed_at: list[float] = field(default_factory=list)
    context: Any = field(default_factory=lambda: _Context())
    config: Any = field(default_factory=lambda: _Config())

    async def _initiate_server_close(self) -> None:
        self.closed_at.append(trio.current_time())


class _Context:
    def __init__(self) -> None:
        self.terminated = EventWrapper()


class _Config:
    keep_alive_timeout = TIMEOUT


class _Group:
    def __init__(self, nursery: trio.Nursery) -> None:
        self.spawn: Callable[[Callable[[], Awaitable[None]]], None] = nursery.start_soon


@asynccontextmanager
async def watched() -> AsyncIterator[tuple[IdleTimer, FakeServer, _Group]]:
    server = FakeServer()
    timer = IdleTimer(cast(TCPServer, server))
    async with trio.open_nursery() as nursery:
        yield timer, server, _Group(nursery)
        timer.finish()


async def _never() -> None:
    raise AssertionError("IdleTimer must not run Hypercorn's idle action")


async def test_an_idle_connection_closes_after_the_keep_alive_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with watched() as (timer, server, group):
        await timer.restart(group, _never)
        await trio.sleep(TIMEOUT * 3)
        assert server.closed_at == [TIMEOUT]


async def test_each_answer_starts_the_idle_timeout_again(autojump_clock: trio.testing.MockClock) -> None:
    async with watched() as (timer, server, group):
        for _ in range(3):  # three requests, each answered after 1 s of idleness
            await timer.restart(group, _never)
            await trio.sleep(1.0)
            await timer.stop()
            await trio.sleep(2.0)
        await timer.restart(group, _never)
        start = trio.current_time()
        await trio.sleep(TIMEOUT * 2)
        assert server.closed_at == [start + TIMEOUT]


async def test_a_request_running_longer_than_the_timeout_is_not_cut(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with watched() as (timer, server, group):
        await timer.restart(group, _never)
        await trio.sleep(1.0)
        await timer.stop()
        await trio.sleep(TIMEOUT * 10)
        assert server.closed_at == []


async def test_stopping_the_server_closes_an_idle_connection_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with watched() as (timer, server, group):
        await timer.restart(group, _never)
        await trio.sleep(1.0)
        await server.context.terminated.set()
        await trio.sleep(0.1)
        assert server.closed_at == [1.0]


async def test_stopping_the_server_waits_for_a_running_request_then_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with watched() as (timer, server, group):
        await timer.restart(group, _never)
        await timer.stop()
        await server.context.terminated.set()
        await trio.sleep(TIMEOUT * 2)
        assert server.closed_at == []
        await timer.restart(group, _never)  # the answer went out
        await trio.sleep(0.1)
        assert server.closed_at == [TIMEOUT * 2]


async def test_a_connection_that_stopped_reading_ends_its_watcher_without_closing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer()
    timer = IdleTimer(cast(TCPServer, server))
    with trio.fail_after(1.0):  # the nursery ends only when the watcher has
        async with trio.open_nursery() as nursery:
            await timer.restart(_Group(nursery), _never)
            await timer.stop()  # a request runs ...
            timer.finish()  # ... and the client went away
    assert server.closed_at == []


class _Stream:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send_all(self, data: bytes) -> None:
        self.sent.append(data)


async def test_the_server_writes_what_it_is_given_but_skips_writes_of_nothing() -> None:
    stream = _Stream()
    server = OrchTCPServer(
        cast(Any, None), cast(Any, None), cast(Any, None), cast(Any, {}), cast(Any, stream)
    )
    for data in (b"HTTP/1.1 200 OK\r\n\r\n", b"{}", b""):
        await server.protocol_send(RawData(data))
    assert stream.sent == [b"HTTP/1.1 200 OK\r\n\r\n", b"{}"]


class _Protocol:
    """What `TCPServer.protocol_send` tells its protocol when a write finds the stream gone."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def handle(self, event: Any) -> None:
        self.events.append(event)


def _socket_server() -> tuple[OrchTCPServer, trio.SocketStream, _Protocol]:
    """An `OrchTCPServer` on one end of a socket pair; the other end is the client."""
    ours, theirs = trio.socket.socketpair()
    server = OrchTCPServer(
        cast(Any, None), cast(Any, None), cast(Any, None), cast(Any, {}), trio.SocketStream(ours)
    )
    protocol = _Protocol()
    server.protocol = cast(Any, protocol)
    return server, trio.SocketStream(theirs), protocol


async def _read_exactly(stream: trio.SocketStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += await stream.receive_some(size - len(data))
    return data


async def test_a_write_the_socket_takes_whole_goes_out_without_a_checkpoint() -> None:
    server, client, _ = _socket_server()
    with trio.testing.assert_no_checkpoints():
        await server.protocol_send(RawData(b"HTTP/1.1 200 OK\r\n\r\n"))
        await server.protocol_send(RawData(b"{}"))
    assert await _read_exactly(client, 21) == b"HTTP/1.1 200 OK\r\n\r\n{}"


async def test_a_connection_that_only_writes_still_checkpoints_now_and_then() -> None:
    server, client, _ = _socket_server()
    with pytest.raises(AssertionError), trio.testing.assert_no_checkpoints():
        for _ in range(DIRECT_WRITES):
            await server.protocol_send(RawData(b"x"))
    assert await _read_exactly(client, DIRECT_WRITES) == b"x" * DIRECT_WRITES


async def test_writes_larger_than_the_socket_takes_arrive_whole_and_in_order() -> None:
    ours, theirs = socket.socketpair()
    server = OrchTCPServer(
        cast(Any, None),
        cast(Any, None),
        cast(Any, None),
        cast(Any, {}),
        trio.SocketStream(trio.socket.from_stdlib_socket(ours)),
    )
    theirs.setblocking(False)
    big = bytes(range(256)) * 40_000  # ~10 MB: far more than a socket buffer
    received = bytearray()

    async def drain() -> None:
        nonlocal received
        while len(received) < len(big) + 5:
            await trio.lowlevel.wait_readable(theirs)
            received += theirs.recv(1 << 20)

    with theirs:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.protocol_send, RawData(big))
            await trio.testing.wait_all_tasks_blocked()  # the big write waits for room, holding the lock
            received += theirs.recv(65536)  # room now, and the big write has not run again yet
            nursery.start_soon(drain)  # runs once this task waits
            await server.protocol_send(RawData(b"after"))  # must wait its turn, not slip in
    assert received == big + b"after"


async def test_a_write_after_the_stream_closed_never_reaches_a_socket_that_reused_its_number() -> None:
    server, client, protocol = _socket_server()
    number = server.stream.socket.fileno()
    await server.stream.aclose()
    pair = socket.socketpair()  # Linux hands out the lowest free numbers: the closed one among them
    try:
        assert number in [end.fileno() for end in pair]
        await server.protocol_send(RawData(b"late"))
        for end in pair:
            end.setblocking(False)
            with pytest.raises(BlockingIOError):
                end.recv(16)  # nothing arrived
    finally:
        for end in pair:
            end.close()
    assert [type(e).__name__ for e in protocol.events] == ["Closed"]
    await client.aclose()


async def test_without_a_read_timeout_the_server_hands_on_what_it_reads_until_the_client_closes() -> None:
    ours, theirs = trio.socket.socketpair()
    server = OrchTCPServer(cast(Any, None), Config(), cast(Any, None), cast(Any, {}), trio.SocketStream(ours))
    protocol = _Protocol()
    server.protocol = cast(Any, protocol)
    client = trio.SocketStream(theirs)
    await client.send_all(b"GET / HTTP/1.1\r\n\r\n")
    await client.send_eof()
    with trio.fail_after(5):
        await server._read_data()
    assert [(type(e).__name__, getattr(e, "data", None)) for e in protocol.events] == [
        ("RawData", b"GET / HTTP/1.1\r\n\r\n"),
        ("RawData", b""),
        ("Closed", None),
    ]
    await client.aclose()


async def test_request_bodies_reach_the_app_without_a_checkpoint_until_it_is_a_queue_behind() -> None:
    config = Config()
    config.max_app_queue_size = 2
    release = trio.Event()
    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any, sync_spawn: Any, call_soon: Any) -> None:
        await release.wait()
        for _ in range(3):
            got.append((await receive())["body"])

    async def server_send(message: Any) -> None:
        pass

    async with OrchTaskGroup() as group:
        put = await group.spawn_app(cast(Any, app), config, cast(Any, {}), server_send)
        with trio.testing.assert_no_checkpoints():
            await put({"type": "http.request", "body": b"a", "more_body": True})
            await put({"type": "http.request", "body": b"b", "more_body": True})
        third = trio.Event()

        async def put_third() -> None:
            await put({"type": "http.request", "body": b"c", "more_body": False})
            third.set()

        group.spawn(put_third)
        await trio.testing.wait_all_tasks_blocked()
        assert not third.is_set()  # the queue is full: it waits for the app
        release.set()
    assert got == [b"a", b"b", b"c"] and third.is_set()


def test_install_makes_hypercorn_build_orch_servers_and_is_idempotent() -> None:
    import hypercorn.trio.run as hypercorn_run
    import hypercorn.trio.tcp_server as hypercorn_tcp_server

    assert install() and install()
    assert getattr(hypercorn_run, "TCPServer") is OrchTCPServer  # noqa: B009 (not re-exported for mypy)
    assert getattr(hypercorn_tcp_server, "TaskGroup") is OrchTaskGroup  # noqa: B009


async def _read_answer(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += await stream.receive_some(65536)
    return head


@pytest.mark.integration
async def test_a_node_closes_an_idle_keep_alive_connection_after_its_timeout(start_node: StartNode) -> None:
    running = await start_node(**{"server.keep_alive_timeout": 0.3})
    url = urlsplit(running.url)
    stream = await trio.open_tcp_stream(url.hostname or "127.0.0.1", url.port or 80)
    request = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
    for _ in range(3):  # the connection serves request after request
        await stream.send_all(request)
        assert (await _read_answer(stream)).startswith(b"HTTP/1.1 200")
    with trio.fail_after(10):
        assert await stream.receive_some(65536) == b"", "the idle connection was closed"
    await stream.aclose()


@pytest.mark.integration
async def test_a_node_keeps_a_connection_whose_request_outlasts_the_timeout(start_node: StartNode) -> None:
    running = await start_node(**{"server.keep_alive_timeout": 0.3})
    headers = await auth_headers(running, "system")
    async with httpx.AsyncClient(base_url=running.url, headers=headers, timeout=10) as http:
        body = json.dumps({"worker_id": "w", "wait": 1.0}).encode()
        first = await http.post("/cores/IDLE_CORE/claim", content=body)  # long-polls 1 s, finds nothing
        assert first.status_code == 204
        second = await http.get("/health")
        assert second.status_code == 200
        assert first.extensions["network_stream"] is second.extensions["network_stream"]
