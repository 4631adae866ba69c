"""Serve a node with Hypercorn's trio worker, in this process, until SIGTERM/SIGINT.

Shutdown order: first signal -> `node.request_shutdown()`: Hypercorn stops accepting, idle keep-alive
connections close, in-flight requests get `server.shutdown_grace` seconds to finish (then are cancelled);
then the node unwinds (actors stop in reverse start order, the database flushes and closes). A second
signal skips the rest of the grace period.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import cast
from wsgiref.handlers import format_date_time

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from hypercorn.typing import ASGIFramework

from orch.config import Config, ServerConfig
from orch.http import OrchApp, Router, create_app
from orch.keepalive import install as install_idle_timer
from orch.llhttp_protocol import install as install_llhttp
from orch.node import ActorSpecs, Node, open_node

__all__ = ["READY_PREFIX", "BindError", "RunningNode", "hypercorn_config", "run_node", "serve_app"]

READY_PREFIX = "orch: ready on "

_log = logging.getLogger("orch.server")


class BindError(OSError):
    """The listening socket could not be opened (address in use, bad host, no permission)."""


@dataclass(frozen=True, slots=True)
class RunningNode:
    """What `run_node` hands to its starter once the server accepts connections."""

    node: Node
    app: OrchApp
    url: str


class _NodeHypercornConfig(HypercornConfig):
    """Hypercorn's config with the `Date` response header formatted once a second, not per response
    (`response_headers` runs for every response: ~3.5 us, most of it formatting the date)."""

    _headers_second = -1
    _headers: dict[str, list[tuple[bytes, bytes]]]

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        second = int(time.time())
        if second != self._headers_second:
            self._headers, self._headers_second = {}, second
        headers = self._headers.get(protocol)
        if headers is None:
            headers = [h for h in super().response_headers(protocol) if h[0] != b"date"]
            if self.include_date_header:  # of the second it is cached for
                headers.insert(0, (b"date", format_date_time(second).encode("ascii")))
            self._headers[protocol] = headers
        return list(headers)  # callers may add to their copy


def hypercorn_config(server: ServerConfig) -> HypercornConfig:
    """Hypercorn settings for one node process (no access log: the edge logs requests itself)."""
    config = _NodeHypercornConfig()
    host = f"[{server.host}]" if ":" in server.host else server.host
    config.bind = [f"{host}:{server.port}"]
    config.graceful_timeout = server.shutdown_grace
    config.keep_alive_timeout = server.keep_alive_timeout
    config.keep_alive_max_requests = server.keep_alive_max_requests
    config.backlog = server.backlog
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.include_server_header = False
    return config


def _bind_failure(exc: BaseException) -> OSError | None:
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _bind_failure(inner)
            if found is not None:
                return found
    return None


async def serve_app(
    app: OrchApp, node: Node, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve `app` until `node.shutdown_requested`, then drain. Started value: the bound URL."""
    config = hypercorn_config(node.config.server)
    install_idle_timer()
    install_llhttp()
    started = False
    try:
        async with trio.open_nursery() as nursery:
            run = partial(
                serve, cast(ASGIFramework, app), config, shutdown_trigger=node.shutdown_requested.wait
            )
            binds: list[str] = await nursery.start(run)
            started = True
            task_status.started(binds[0])
    except (OSError, BaseExceptionGroup) as exc:
        failure = None if started else _bind_failure(exc)
        if failure is None:
            raise
        where = config.bind[0]
        raise BindError(failure.errno, f"cannot listen on {where}: {failure.strerror or failure}") from None
    _log.info("http server stopped")


async def _watch_signals(
    node: Node, scope: trio.CancelScope, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            name = signal.Signals(signum).name
            if not node.draining:
                grace = node.config.server.shutdown_grace
                _log.info("%s received: shutting down gracefully (grace %.1f s)", name, grace)
                node.request_shutdown()
            else:
                _log.warning("%s received again: stopping without waiting for in-flight requests", name)
                scope.cancel()
                return


async def _serve_then_stop(
    app: OrchApp,
    node: Node,
    scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve_app(app, node, task_status=task_status)
    scope.cancel()  # the server is done: stop the signal watcher too


def print_ready(url: str) -> None:
    """The one line scripts wait for."""
    print(f"{READY_PREFIX}{url}", flush=True)


async def run_node(
    config: Config,
    *,
    on_ready: Callable[[str], None] = print_ready,
    handle_signals: bool = True,
    routers: Iterable[Router] = (),
    actors: ActorSpecs | None = None,
    task_status: trio.TaskStatus[RunningNode] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open the node, serve it, and unwind in order when the server stops."""
    async with open_node(config, actors=actors) as node:
        app = create_app(node, routers=routers)
        async with trio.open_nursery() as nursery:
            if handle_signals:
                await nursery.start(_watch_signals, node, nursery.cancel_scope)
            url = await nursery.start(_serve_then_stop, app, node, nursery.cancel_scope)
            on_ready(url)
            task_status.started(RunningNode(node, app, url))
