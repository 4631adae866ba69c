"""The access log: one line per request, or (server.access_log false) only the server errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
import trio
from quart import Response

from orch.http import Router, json_response

from .helpers import StartNode

pytestmark = pytest.mark.integration

routes = Router("accesslog")


@routes.get("/fine", summary="Answers 200")
async def fine() -> Response:
    return json_response({"ok": True})


@routes.get("/broken", summary="Always fails")
async def broken() -> Response:
    raise RuntimeError("broken on purpose")


class Lines(logging.Handler):
    """Collects access records (emitted on the Trio thread by the edge)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.changed = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, count: int) -> None:
        while len(self.records) < count:
            await self.changed.wait()


@pytest.fixture
def access_lines() -> Iterator[Lines]:
    logger = logging.getLogger("orch.http.access")
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


async def request_all(url: str, lines: Lines, *, expect: int) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/fine")).status_code == 200
        assert (await http.get("/missing")).status_code == 404
        assert (await http.get("/broken")).status_code == 500
    # The line is written once the app returns, which may be just after the client has its answer.
    with trio.fail_after(5):
        await lines.wait_for(expect)
    await trio.sleep(0.05)  # room for a line that should not be there


async def test_every_request_is_logged_by_default(start_node: StartNode, access_lines: Lines) -> None:
    node = await start_node(routers=[routes])
    await request_all(node.url, access_lines, expect=3)
    assert [(r.method, r.route, r.status) for r in access_lines.records] == [  # type: ignore[attr-defined]
        ("GET", "/fine", 200),
        ("GET", "<unmatched>", 404),
        ("GET", "/broken", 500),
    ]


async def test_with_the_access_log_off_only_server_errors_are_logged(
    start_node: StartNode, access_lines: Lines
) -> None:
    node = await start_node(routers=[routes], **{"server.access_log": False})
    await request_all(node.url, access_lines, expect=1)
    assert [(r.getMessage(), r.status) for r in access_lines.records] == [("GET /broken 500", 500)]  # type: ignore[attr-defined]
