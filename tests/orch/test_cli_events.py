"""`orch events` as a real subprocess against a real node, and the SSE client it is built on (`follow_events`,
`follow_task`): listing, following, filters, reconnect after a cut-off, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest
import trio

from orch.feeds.client import (
    FeedError,
    FeedEvent,
    SseComment,
    SseMessage,
    SseParser,
    follow_events,
    follow_task,
)
from orch.server import RunningNode

from .auth_helpers import auth_headers, token_for
from .feed_helpers import Spec, emit
from .helpers import StartNode

pytestmark = pytest.mark.integration


async def orch_events(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run `python -m orch events ARGS` to completion (bounded by the caller's deadline)."""
    return await trio.run_process(
        [sys.executable, "-m", "orch", "events", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


async def test_events_lists_the_stored_events_and_exits(start_node: StartNode) -> None:
    node = await start_node()
    stored = await emit(node, [Spec("test.a", "t1", "C1"), Spec("test.b"), Spec("other.c")], k="v")
    token = await token_for(node, "viewer")
    with trio.fail_after(30):
        done = await orch_events("--url", node.url, "--type", "test.", env={"ORCH_TOKEN": token})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert [int(line.split()[0]) for line in lines] == [stored[0].seq, stored[1].seq]
    first = lines[0].split()
    assert first[2:5] == ["test.a", "t1", "C1"] and json.loads(first[5]) == {"i": 0, "k": "v"}


async def test_events_json_lines_with_filters_and_after(start_node: StartNode) -> None:
    node = await start_node()
    stored = await emit(node, [Spec("test.a", "t1"), Spec("test.a", "t2"), Spec("test.a", "t1")])
    token = await token_for(node, "viewer")
    args = ["--url", node.url, "--token", token, "--json", "--task", "t1", "--after", str(stored[0].seq)]
    with trio.fail_after(30):
        done = await orch_events(*args)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [e["seq"] for e in events] == [stored[2].seq]
    assert events[0]["subject"] == "t1" and events[0]["type"] == "test.a"


async def test_events_follow_prints_live_events_until_stopped(start_node: StartNode) -> None:
    node = await start_node()
    token = await token_for(node, "viewer")
    [before] = await emit(node, 1)
    after = str(before.seq)
    command = [
        sys.executable,
        "-m",
        "orch",
        "events",
        "--follow",
        "--json",
        "--type",
        "test.",
        "--after",
        after,
    ]
    env = {**os.environ, "ORCH_URL": node.url, "ORCH_TOKEN": token}
    with trio.fail_after(30):
        process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE, env=env)
        assert process.stdout is not None
        try:
            emitted = [e.seq for e in await emit(node, 3)]
            text = b""
            while text.count(b"\n") < 3:
                text += await process.stdout.receive_some(65536)
            emitted += [e.seq for e in await emit(node, 2)]  # certainly live by now
            while text.count(b"\n") < 5:
                text += await process.stdout.receive_some(65536)
            assert [json.loads(line)["seq"] for line in text.splitlines()] == emitted
            assert process.poll() is None  # still following
        finally:
            process.terminate()
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await process.wait()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--token", "bad"], 1, "refused"),
        (["--type", "a b"], 2, "--type"),
        (["--after", "-1"], 2, "--after"),
    ],
)
async def test_events_errors_are_one_line_with_an_exit_code(
    start_node: StartNode, args: list[str], code: int, message: str
) -> None:
    node = await start_node()
    with trio.fail_after(30):
        done = await orch_events("--url", node.url, *args)
    assert done.returncode == code
    assert message in done.stderr.decode()
    assert "Traceback" not in done.stderr.decode()


async def test_follow_events_reconnects_after_a_lagged_cut_off_without_gap_or_duplicate(
    start_node: StartNode,
) -> None:
    node = await start_node(**{"feeds.buffer": 4})
    token = await token_for(node, "viewer")
    seen: list[int] = []
    notes: list[str] = []
    produced: list[int] = []

    async def on_event(event: FeedEvent) -> bool:
        seen.append(event.seq)
        return len(seen) >= 150

    async def produce() -> None:
        for _ in range(5):
            produced.extend(e.seq for e in await emit(node, 30))  # each commit overflows the buffer
            await trio.sleep(0.05)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            last = await follow_events(
                node.url,
                token,
                {"type": "test."},
                after=0,
                follow=True,
                on_event=on_event,
                on_note=notes.append,
            )
    assert seen == produced and last == produced[-1]
    assert notes, "expected at least one reconnect"


async def test_follow_task_returns_the_final_event(start_node: StartNode) -> None:
    node = await start_node()
    token = await token_for(node, "operator")
    async with (
        httpx.AsyncClient(base_url=node.url, headers=await auth_headers(node, "operator")) as ops,
        httpx.AsyncClient(base_url=node.url, headers=await auth_headers(node, "system")) as worker,
    ):
        task = (await ops.post("/dispatch", json={"core_id": "FT"})).json()
        types: list[str] = []
        final: list[FeedEvent] = []

        async def follow() -> None:
            async def record(event: FeedEvent) -> None:
                types.append(event.type)

            final.append(await follow_task(node.url, token, task["task_id"], on_event=record))

        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(follow)
                claimed = (await worker.post("/cores/FT/claim", json={"wait": 5})).json()
                body: dict[str, Any] = {"status": "succeeded", "lease_token": claimed["lease_token"]}
                assert (await worker.put(f"/jobs/{task['task_id']}/status", json=body)).status_code == 200
    assert final[0].type == "task.succeeded" and final[0].subject == task["task_id"]
    assert types[0] == "task.queued" and types[-1] == "task.succeeded"


async def test_follow_events_raises_on_a_refusal_and_gives_up_when_bounded(start_node: StartNode) -> None:
    node: RunningNode = await start_node()

    async def ignore(event: FeedEvent) -> bool:
        return False

    with trio.fail_after(10):
        with pytest.raises(FeedError) as refused:
            await follow_events(node.url, "bad", {}, after=0, follow=True, on_event=ignore)
        assert refused.value.status == 401
        with pytest.raises(FeedError) as unreachable:
            await follow_events(
                "http://127.0.0.1:9", None, {}, after=0, follow=False, on_event=ignore, max_attempts=2
            )
        assert unreachable.value.status == 503


def test_sse_parser_an_id_alone_moves_the_last_event_id_without_a_message() -> None:
    parser = SseParser()
    assert [parser.feed(line) for line in ["retry: 1000", ": stream open", "id: 41", ""]] == [
        None,
        SseComment("stream open"),
        None,
        None,
    ]
    assert parser.last_event_id == "41"


def test_sse_parser_follows_the_line_protocol() -> None:
    parser = SseParser()
    lines = [
        "retry: 500",
        ": hello",
        "id: 7",
        "event: task.queued",
        "data: {",
        "data: }",
        "",
        "",
        "data:x",
        "",
    ]
    items = [parser.feed(line) for line in lines]
    assert items == [
        None,
        SseComment("hello"),
        None,
        None,
        None,
        None,
        SseMessage("task.queued", "{\n}", "7", 500),
        None,
        None,
        SseMessage("message", "x", "7", None),  # the last event id persists (as in browsers)
    ]


async def test_follow_events_stops_with_401_when_the_token_expires(start_node: StartNode) -> None:
    node = await start_node(**{"security.access_token_ttl": 1.0})
    token = await token_for(node, "viewer")

    async def ignore(event: FeedEvent) -> bool:
        return False

    with trio.fail_after(10), pytest.raises(FeedError) as expired:
        await follow_events(node.url, token, {}, after=None, follow=True, on_event=ignore)
    assert expired.value.status == 401
