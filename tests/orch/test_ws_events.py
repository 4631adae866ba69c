"""WS /ws/events against a real node with trio-websocket: subscribe, unsubscribe, resume by seq, lag,
auth (handshake token, first message), bad messages, shutdown."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection, open_websocket_url

from orch.server import RunningNode

from .auth_helpers import token_for
from .feed_helpers import Spec, emit
from .helpers import StartNode

pytestmark = pytest.mark.integration


def ws_url(node: RunningNode, path: str = "/ws/events", token: str | None = None) -> str:
    url = node.url.replace("http://", "ws://") + path
    return f"{url}?token={token}" if token else url


@asynccontextmanager
async def events_socket(node: RunningNode, role: str = "viewer") -> AsyncIterator[WebSocketConnection]:
    token = await token_for(node, role)
    async with open_websocket_url(ws_url(node, token=token), max_message_size=16 * 1024 * 1024) as ws:
        yield ws


async def send(ws: WebSocketConnection, **message: Any) -> None:
    await ws.send_message(json.dumps(message))


async def receive(ws: WebSocketConnection, *skip: str) -> dict[str, Any]:
    """The next message that is not a heartbeat (nor one of the ops in `skip`)."""
    while True:
        message: dict[str, Any] = json.loads(await ws.get_message())
        if message.get("op") not in ("heartbeat", *skip):
            return message


async def events_until(ws: WebSocketConnection, sub: str, last: int) -> list[int]:
    """Seqs of subscription `sub`'s `events` messages up to seq `last` (other messages are an error)."""
    seqs: list[int] = []
    while not seqs or seqs[-1] < last:
        message = await receive(ws, "live")
        assert message["op"] == "events" and message["id"] == sub, message
        seqs += [event["seq"] for event in message["events"]]
        assert message["last_seq"] >= seqs[-1]
    return seqs


async def test_subscribe_replays_then_streams_live_in_order(start_node: StartNode) -> None:
    node = await start_node(**{"feeds.replay_page": 3})
    stored = [e.seq for e in await emit(node, 10)]
    with trio.fail_after(10):
        async with events_socket(node) as ws:
            await send(ws, op="subscribe", id="s1", types=["test."], after=stored[2])
            assert await receive(ws) == {"op": "subscribed", "id": "s1", "after": stored[2], "type": "test."}
            assert await events_until(ws, "s1", stored[-1]) == stored[3:]
            assert (await receive(ws))["op"] == "live"
            live = [e.seq for e in await emit(node, 5)]
            assert await events_until(ws, "s1", live[-1]) == live


async def test_many_subscriptions_on_one_socket_each_get_their_filter(start_node: StartNode) -> None:
    node = await start_node()
    with trio.fail_after(10):
        async with events_socket(node) as ws:
            await send(ws, op="subscribe", id="tasks", topics=["task"])
            await send(ws, op="subscribe", id="core-b", core_id="B")
            got: dict[str, list[str]] = {"tasks": [], "core-b": []}
            subscribed = 0
            events = await emit(
                node,
                [
                    Spec("task.queued", "t1", "A"),
                    Spec("lock.acquired", "r", "B"),
                    Spec("task.dead", "t2", "B"),
                ],
            )
            while sum(len(v) for v in got.values()) < 4:
                message = await receive(ws, "live")
                if message["op"] == "subscribed":
                    subscribed += 1
                    continue
                got[message["id"]] += [e["type"] for e in message["events"]]
    assert subscribed == 2 and len(events) == 3
    assert got == {"tasks": ["task.queued", "task.dead"], "core-b": ["lock.acquired", "task.dead"]}


async def test_unsubscribe_stops_events_and_reports_where_to_resume(start_node: StartNode) -> None:
    node = await start_node()
    with trio.fail_after(10):
        async with events_socket(node) as ws:
            await send(ws, op="subscribe", id="a", types=["test."])
            await send(ws, op="subscribe", id="b", types=["test."])
            first = [e.seq for e in await emit(node, 3)]
            seen: dict[str, list[int]] = {"a": [], "b": []}
            while len(seen["a"]) < 3 or len(seen["b"]) < 3:
                message = await receive(ws, "live", "subscribed")
                seen[message["id"]] += [e["seq"] for e in message["events"]]
            await send(ws, op="unsubscribe", id="a")
            assert await receive(ws, "live") == {"op": "unsubscribed", "id": "a", "last_seq": first[-1]}
            second = [e.seq for e in await emit(node, 2)]
            # Only "b" still gets events; "a" resumes later from its last_seq, losing nothing.
            assert await events_until(ws, "b", second[-1]) == second
            await send(ws, op="subscribe", id="a", types=["test."], after=first[-1])
            assert (await receive(ws))["op"] == "subscribed"
            assert await events_until(ws, "a", second[-1]) == second
            await send(ws, op="unsubscribe", id="nope")
            error = await receive(ws, "live")
            assert error["op"] == "error" and error["error"]["status"] == 422


async def test_resume_by_seq_on_a_new_connection_has_no_gap_and_no_duplicate(start_node: StartNode) -> None:
    # No coalescing: the rounds below count on about one message per commit, to cut in mid-stream.
    node = await start_node(**{"feeds.replay_page": 5, "feeds.coalesce": 0})
    received: list[int] = []
    produced: list[int] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:

            async def produce() -> None:
                for _ in range(60):
                    produced.extend(e.seq for e in await emit(node, 3))
                    await trio.sleep(0.002)

            nursery.start_soon(produce)
            for round_ in range(4):
                async with events_socket(node) as ws:
                    after = received[-1] if received else 0
                    await send(ws, op="subscribe", id="s", types=["test."], after=after)
                    for _ in range(8 if round_ < 3 else 10**6):
                        message = await receive(ws, "live", "subscribed")
                        received.extend(e["seq"] for e in message["events"])
                        if round_ == 3 and len(produced) == 180 and received[-1] == produced[-1]:
                            break
                # the socket is closed mid-stream (events still coming); the next one resumes
    assert received == produced


async def test_a_lagging_subscription_ends_with_lagged_and_resumes_from_its_seq(
    start_node: StartNode,
) -> None:
    node = await start_node(**{"feeds.buffer": 8})
    with trio.fail_after(10):
        async with events_socket(node) as ws:
            await send(ws, op="subscribe", id="s", types=["test."])
            assert (await receive(ws))["op"] == "subscribed"
            assert (await receive(ws))["op"] == "live"
            burst = [e.seq for e in await emit(node, 40)]  # one commit: more than the buffer of 8
            lagged = await receive(ws)
            assert lagged["op"] == "lagged" and lagged["id"] == "s"
            # The socket stays open: subscribe again after the seq it reported.
            await send(ws, op="subscribe", id="s", types=["test."], after=lagged["last_seq"])
            assert (await receive(ws))["op"] == "subscribed"
            assert await events_until(ws, "s", burst[-1]) == burst
    text = (await node.node.metrics.render()).decode()
    assert 'orch_feed_lagged_disconnects_total{transport="ws_events"} 1.0' in text


async def test_token_in_the_first_message_authenticates(start_node: StartNode) -> None:
    node = await start_node()
    token = await token_for(node, "viewer")
    with trio.fail_after(10):
        async with open_websocket_url(ws_url(node)) as ws:
            await send(ws, op="auth", token=token)
            authenticated = await receive(ws)
            assert authenticated["op"] == "authenticated" and authenticated["role"] == "viewer"
            await send(ws, op="ping")
            assert await receive(ws) == {"op": "pong"}


@pytest.mark.parametrize(
    ("first", "status", "code"),
    [
        ({"op": "subscribe"}, 401, 4401),  # anything but auth first
        ({"op": "auth", "token": "not-a-token"}, 401, 4401),
        ({"op": "auth"}, 422, 4401),  # the error names the missing field
        ("system", 403, 4403),  # a valid token whose role may not stream events
    ],
)
async def test_a_bad_first_message_gets_an_error_and_a_close(
    start_node: StartNode, first: dict[str, Any] | str, status: int, code: int
) -> None:
    node = await start_node()
    message = {"op": "auth", "token": await token_for(node, first)} if isinstance(first, str) else first
    with trio.fail_after(10):
        async with open_websocket_url(ws_url(node)) as ws:
            await send(ws, **message)
            error = await receive(ws)
            assert error["op"] == "error"
            assert error["error"]["status"] == status
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
    assert closed.value.reason.code == code


@pytest.mark.parametrize(("role", "status"), [(None, 401), ("system", 403)])
async def test_a_bad_handshake_token_is_refused_before_the_upgrade(
    start_node: StartNode, role: str | None, status: int
) -> None:
    node = await start_node()
    token = "garbage" if role is None else await token_for(node, role)
    with trio.fail_after(10), pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(ws_url(node, token=token)):
            pass
    assert rejected.value.status_code == status
    assert rejected.value.body is not None and json.loads(rejected.value.body)["status"] == status


async def test_bad_messages_are_answered_and_the_socket_stays_open(start_node: StartNode) -> None:
    node = await start_node()
    bad: list[str] = [
        "not json",
        "[1, 2]",
        json.dumps({"op": "dance"}),
        json.dumps({"op": "subscribe", "types": "task."}),
        json.dumps({"op": "subscribe", "after": -3}),
        json.dumps({"op": "subscribe", "colour": "red"}),
        json.dumps({"op": "subscribe", "types": ["ta sk"]}),
    ]
    with trio.fail_after(10):
        async with events_socket(node) as ws:
            for raw in bad:
                await ws.send_message(raw)
                answer = await receive(ws)
                assert answer["op"] == "error", raw
                assert 400 <= answer["error"]["status"] < 500, raw
            await send(ws, op="subscribe", id="dup")
            assert (await receive(ws, "live"))["op"] == "subscribed"
            await send(ws, op="subscribe", id="dup")
            assert (await receive(ws, "live"))["error"]["status"] == 409
            await send(ws, op="ping")
            assert await receive(ws, "live") == {"op": "pong"}


async def test_graceful_shutdown_ends_subscriptions_then_closes_with_1001(start_node: StartNode) -> None:
    node = await start_node(**{"server.shutdown_grace": 10.0})
    with trio.fail_after(5):
        async with events_socket(node) as ws:
            await send(ws, op="subscribe", id="s", types=["test."])
            assert (await receive(ws))["op"] == "subscribed"
            assert (await receive(ws))["op"] == "live"
            [stored] = await emit(node, 1)
            assert await events_until(ws, "s", stored.seq) == [stored.seq]
            node.node.request_shutdown()
            ended = await receive(ws)
            assert ended["op"] == "ended" and ended["last_seq"] == stored.seq
            assert (await receive(ws))["op"] == "shutdown"
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
    assert closed.value.reason.code == 1001


async def test_heartbeats_break_silence(start_node: StartNode) -> None:
    node = await start_node(**{"feeds.heartbeat": 0.1})
    with trio.fail_after(5):
        async with events_socket(node) as ws:
            assert json.loads(await ws.get_message()) == {"op": "heartbeat"}
    text = (await node.node.metrics.render()).decode()
    assert 'orch_feed_connections{transport="ws_events"}' in text


async def test_the_socket_closes_when_the_token_expires(start_node: StartNode) -> None:
    node = await start_node(**{"security.access_token_ttl": 2.0})
    with trio.fail_after(10):
        async with events_socket(node) as ws:
            await send(ws, op="subscribe", id="s", types=["test."])
            assert (await receive(ws))["op"] == "subscribed"
            error = await receive(ws, "live")
            assert error["op"] == "error" and error["error"]["status"] == 401
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
    assert closed.value.reason.code == 4401
