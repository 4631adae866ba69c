"""Closed feed connections do not pile up in memory: their state is left in reference cycles, and the
node's garbage sweeper (not Python's rarely-running full collection, under the feeds GC tuning) frees it."""

from __future__ import annotations

import gc
import json

import pytest
import trio
from trio_websocket import open_websocket_url

from orch.feeds import EventFeed, FeedHub
from orch.feeds.ws_common import SocketWriter
from orch.server import RunningNode

from .auth_helpers import token_for
from .helpers import StartNode
from .test_ws_events import receive, ws_url

pytestmark = pytest.mark.integration


async def open_and_close(node: RunningNode, token: str) -> None:
    async with open_websocket_url(ws_url(node, token=token)) as ws:
        await ws.send_message(json.dumps({"op": "subscribe", "id": "s", "types": ["task."]}))
        assert (await receive(ws))["op"] == "subscribed"


async def all_closed(hub: FeedHub) -> None:
    while hub.broadcast.statistics().subscribers:  # noqa: ASYNC110 - no event to wait on
        await trio.sleep(0.01)


def alive_connection_state() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, EventFeed | SocketWriter))


async def test_closed_event_sockets_are_swept_by_the_node(start_node: StartNode) -> None:
    node = await start_node(**{"feeds.gc_sweep_interval": 0.02})
    hub = node.node.feeds
    assert hub is not None
    hub.sweeper.min_closed = 1
    token = await token_for(node, "viewer")
    gc.disable()  # as under the node's GC tuning: no automatic full collection
    try:
        with trio.fail_after(20):
            for _ in range(10):
                await open_and_close(node, token)
            await all_closed(hub)
            await trio.sleep(0.1)  # the handlers finish unwinding
            sweeps = hub.sweeper.sweeps
            await open_and_close(node, token)  # one more close: one more sweep, after the ten are gone
            await all_closed(hub)
            while hub.sweeper.sweeps == sweeps or hub.sweeper.closed:  # noqa: ASYNC110
                await trio.sleep(0.01)
        # The last connection's state may be left for the next sweep; the ten before it are gone.
        assert alive_connection_state() <= 2
    finally:
        gc.enable()
