"""Fixtures that start a REAL node: Hypercorn's trio worker on an ephemeral 127.0.0.1 port, temp data dir."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from orch.config import load_config
from orch.http import Router
from orch.node import ActorSpecs
from orch.server import RunningNode, run_node

from .auth_helpers import TEST_SECURITY, auth_headers
from .helpers import StartNode


@pytest.fixture
async def start_node(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[StartNode]:
    """`await start_node(routers=[...], actors=..., **{"server.max_body_bytes": 100})` -> a RunningNode."""
    running: list[RunningNode] = []

    async def start(
        routers: Iterable[Router] = (), actors: ActorSpecs | None = None, **overrides: Any
    ) -> RunningNode:
        settings: Mapping[str, Any] = {
            "server.port": 0,
            "database.data_dir": tmp_path / f"data{len(running)}",
            "server.shutdown_grace": 2.0,
            **TEST_SECURITY,  # first admin from config, bcrypt cost 4 (tests/orch/auth_helpers.py)
            **overrides,
        }
        config = load_config(env={}, overrides=settings)
        node: RunningNode = await nursery.start(
            partial(
                run_node,
                config,
                on_ready=lambda url: None,
                handle_signals=False,
                routers=routers,
                actors=actors,
            )
        )
        running.append(node)
        return node

    yield start
    for node in running:
        node.node.request_shutdown()


@pytest.fixture
async def node(start_node: StartNode) -> RunningNode:
    """A node with only the built-in routes."""
    return await start_node()


@pytest.fixture
async def client(node: RunningNode) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client pointed at `node`."""
    async with httpx.AsyncClient(base_url=node.url) as http:
        yield http


@pytest.fixture
async def admin_client(node: RunningNode) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client pointed at `node`, logged in as the admin (see tests/orch/auth_helpers.py)."""
    async with httpx.AsyncClient(base_url=node.url, headers=await auth_headers(node, "admin")) as http:
        yield http


@pytest.fixture
def access_records() -> Iterator[list[logging.LogRecord]]:
    """Every access-log record written while the test runs."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("orch.http.access")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)
