"""Hypercorn's trio TCP server without four per-request costs: the keep-alive idle task, empty writes, and
the scheduler round trips of each write and of each request-body hand-off.

Hypercorn's `TCPServer` closes a keep-alive connection that stays idle for `keep_alive_timeout`, or
at once when the server shuts down, with a task it stops when a request arrives and starts again after
each answer (`TrioSingleTask`: a lock, a cancelled task, `nursery.start` of a new one). That costs ~95 us
of CPU per request here — a tenth of what a whole small request costs the node (DESIGN §7). `IdleTimer`
keeps the same rules with one watcher task per connection whose cancel-scope deadline moves instead.
And h11 ends every Content-Length body with an empty write, which still costs the server's send lock, a
shielded cancel scope and a checkpoint (~20 us a response): `OrchTCPServer` skips writes of nothing (orch
serves HTTP/1.1 with `llhttp_protocol`, which writes none; the skip covers Hypercorn's h11 protocol).
Every other write takes the send lock and trio's `send_all`, which yield to the scheduler twice; when no
write is under way, `OrchTCPServer` hands the bytes to the non-blocking socket at once and sends only
what it did not take the usual way (plain TCP only; a TLS stream encrypts in `send_all`). Its task group
(`OrchTaskGroup`) hands request bodies to the app without the memory channel's two checkpoints.

`install()` makes Hypercorn's trio worker build `OrchTCPServer`s (a module attribute of
`hypercorn.trio.run`); it leaves Hypercorn alone when the server class does not look as expected.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Awaitable, Callable
from typing import Any

import hypercorn.trio.run as hypercorn_run
import hypercorn.trio.tcp_server as hypercorn_tcp_server
import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import TrioSingleTask
from hypercorn.typing import AppWrapper, ASGIReceiveEvent, ASGISendEvent, Scope

__all__ = ["IdleTimer", "OrchTCPServer", "OrchTaskGroup", "install"]

_log = logging.getLogger("orch.server")

DIRECT_WRITES = 32  # at most this many writes in a row without a checkpoint (see `_write_now`)


class IdleTimer(TrioSingleTask):
    """`TCPServer.idle_task`: `restart` (the connection went idle) and `stop` (a request came) move one
    watcher's deadline; `finish` (the connection's reading ended) lets the watcher go without closing."""

    def __init__(self, server: TCPServer) -> None:
        super().__init__()
        self._server = server
        self._deadline = math.inf  # inf while a request runs
        self._scope: trio.CancelScope | None = None
        self._watching = False
        self._finished = False

    async def restart(self, task_group: Any, action: Callable[..., Any]) -> None:
        """Idle from now on: close after `keep_alive_timeout`, or at once when the server is stopping."""
        del action  # TCPServer._idle_timeout: `_watch` waits the same way, on a deadline it can move
        stopping = self._server.context.terminated.is_set()
        self._move(trio.current_time() + (0.0 if stopping else self._server.config.keep_alive_timeout))
        if not self._watching and not self._finished:
            self._watching = True
            task_group.spawn(self._watch)

    async def stop(self) -> None:
        """A request is being served: no idle deadline until the next `restart`."""
        self._move(math.inf)

    def finish(self) -> None:
        """The connection stopped reading (closed, broken, timed out): the watcher ends, closing nothing."""
        self._finished = True
        self._move(-math.inf)

    def _move(self, deadline: float) -> None:
        self._deadline = deadline
        if self._scope is not None:
            self._scope.deadline = deadline

    async def _watch(self) -> None:
        terminated = self._server.context.terminated
        while True:
            with trio.CancelScope(deadline=self._deadline) as scope:
                self._scope = scope
                if terminated.is_set():  # stopping while a request runs: wait for it to go idle
                    await trio.sleep_forever()
                else:
                    await terminated.wait()
            self._scope = None
            if self._finished:
                return
            idle = self._deadline != math.inf
            if idle and (terminated.is_set() or trio.current_time() >= self._deadline):
                break
        with trio.CancelScope(shield=True):
            await self._server._initiate_server_close()


class OrchTCPServer(TCPServer):
    """Hypercorn's trio `TCPServer` with an `IdleTimer` as its idle task, skipping empty writes, writing
    straight to the socket when it can, and reading without a per-read cancel scope (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle_timer = self.idle_task = IdleTimer(self)
        # Direct writes only on a plain TCP stream (TLS streams encrypt in `send_all`).
        stream: object = self.stream  # typed as TLS by Hypercorn; plain TCP at run time without TLS
        self._plain_socket = stream.socket if type(stream) is trio.SocketStream else None
        self._direct_writes = 0

    async def protocol_send(self, event: Event) -> None:
        """Hypercorn's, except that a write of no bytes (h11's end of a Content-Length body) is skipped
        and that bytes the socket takes at once are written without the lock and checkpoints."""
        if type(event) is RawData:
            if not event.data:
                return
            sent = self._write_now(event.data)
            if sent == len(event.data):
                return
            if sent:  # the rest must follow: no cancellation between the two parts
                with trio.CancelScope(shield=True):
                    await super().protocol_send(RawData(event.data[sent:]))
                return
        await super().protocol_send(event)

    def _write_now(self, data: bytes) -> int:
        # Hypercorn's write takes its send lock, a shielded cancel scope and trio's send_all, which
        # yields to the scheduler twice (~20 us a write; two writes a response). When no other write
        # is under way, a non-blocking send of what the socket takes now is the same write: the
        # shield means a cancellation could not interrupt it anyway, and what is left goes the usual
        # way in order. Every DIRECT_WRITES-th write goes the usual way, so a task that only writes
        # still lets the others run. The fd is looked up each time: after a close it is -1 (EBADF),
        # never a number that a newer connection may have been given.
        if self._plain_socket is None or self.send_lock.locked():
            return 0
        self._direct_writes += 1
        if self._direct_writes % DIRECT_WRITES == 0:
            return 0
        try:
            return os.write(self._plain_socket.fileno(), data)
        except OSError:  # would block, closed or broken: the usual path waits or reports it
            return 0

    async def _read_data(self) -> None:
        try:
            if self.config.read_timeout is None:
                await self._read_without_timeout()
            else:
                await super()._read_data()
        finally:
            self._idle_timer.finish()

    async def _read_without_timeout(self) -> None:
        # Hypercorn's loop, minus the `fail_after(inf)` cancel scope it opens around every read
        # when no read timeout is set (~5 us a read, a read or more a request).
        while True:
            try:
                data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
        await self.protocol.handle(Closed())


class OrchTaskGroup(TaskGroup):
    """Hypercorn's per-connection task group, whose request-body hand-off skips the checkpoints.

    Hypercorn hands each request's body messages to the app through a memory channel's `send`, which
    yields to the scheduler even when the channel has room (twice a request: the body, then its end).
    The hand-off it returns queues the message at once when there is room and waits only when the app
    is `max_app_queue_size` messages behind (the connection task yields at its next read anyway)."""

    async def spawn_app(
        self,
        app: AppWrapper,
        config: Config,
        scope: Scope,
        send: Callable[[ASGISendEvent | None], Awaitable[None]],
    ) -> Callable[[ASGIReceiveEvent], Awaitable[None]]:
        """Start the app's task (Hypercorn's); the body hand-off puts without a checkpoint when it can."""
        put = await super().spawn_app(app, config, scope, send)
        channel = getattr(put, "__self__", None)
        if not isinstance(channel, trio.MemorySendChannel):
            return put

        async def put_now(message: ASGIReceiveEvent) -> None:
            try:
                channel.send_nowait(message)
            except trio.WouldBlock:
                await channel.send(message)

        return put_now


_EXPECTED = ("_idle_timeout", "_initiate_server_close", "_read_data", "protocol_send")


def install() -> bool:
    """Serve with `OrchTCPServer` (and its `OrchTaskGroup`) from now on (idempotent); False if Hypercorn's
    server is not as expected."""
    current = getattr(hypercorn_run, "TCPServer", None)
    if current is OrchTCPServer:
        return True
    if current is not TCPServer or not all(hasattr(TCPServer, name) for name in _EXPECTED):
        _log.warning("hypercorn's TCPServer is not the one orch knows: keeping its own idle timer")
        return False
    if getattr(hypercorn_tcp_server, "TaskGroup", None) is TaskGroup:
        setattr(hypercorn_tcp_server, "TaskGroup", OrchTaskGroup)  # noqa: B010
    setattr(hypercorn_run, "TCPServer", OrchTCPServer)  # noqa: B010 (not a re-export mypy knows)
    return True
