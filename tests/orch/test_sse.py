"""GET /sse/events against a real node, read with a raw socket: order, resume, filters, heartbeats, lag,
coalescing, auth, shutdown."""

from __future__ import annotations

import json
import random

import httpx
import pytest
import trio

from orch.feeds.client import SseComment, SseMessage

from .auth_helpers import auth_headers
from .feed_helpers import RawSse, Spec, emit, seq_of
from .helpers import StartNode

pytestmark = pytest.mark.integration

TESTS = {"type": "test."}  # the node writes security.* events of its own (first admin, logins)


async def test_live_events_arrive_once_each_in_seq_order(start_node: StartNode) -> None:
    node = await start_node()
    headers = await auth_headers(node, "viewer")
    with trio.fail_after(10):
        async with await RawSse.open(node.url, headers=headers) as sse:
            assert sse.status == 200
            assert sse.headers["content-type"].startswith("text/event-stream")
            await sse.wait_comment("stream open")
            await sse.wait_comment("live")
            emitted = []
            for size in (1, 7, 3, 20, 1):
                emitted += [e.seq for e in await emit(node, size)]
            received = [seq_of(await sse.next_message()) for _ in emitted]
    assert received == emitted


async def test_a_live_only_stream_names_its_start_so_a_reconnect_replays_nothing_old(
    start_node: StartNode,
) -> None:
    node = await start_node()
    headers = await auth_headers(node, "viewer")
    old = await emit(node, 3)
    with trio.fail_after(10):
        async with await RawSse.open(node.url, TESTS, headers) as sse:
            await sse.wait_comment("live")
            start = sse.last_event_id
        assert start is not None and int(start) >= old[-1].seq
        missed = [e.seq for e in await emit(node, 2)]  # while disconnected
        async with await RawSse.open(node.url, TESTS, {**headers, "Last-Event-ID": start}) as sse:
            assert [seq_of(await sse.next_message()) for _ in missed] == missed
            await sse.wait_comment("live")


async def test_frames_carry_seq_as_id_and_type_as_event(start_node: StartNode) -> None:
    node = await start_node()
    headers = await auth_headers(node, "viewer")
    with trio.fail_after(10):
        async with await RawSse.open(node.url, headers=headers) as sse:
            await sse.wait_comment("live")
            [stored] = await emit(node, [Spec("task.queued", subject="t-1", core_id="C1")], n=5)
            message = await sse.next_message()
    assert message.id == str(stored.seq)
    assert message.event == "task.queued"
    data = json.loads(message.data)
    assert data["subject"] == "t-1" and data["core_id"] == "C1" and data["topic"] == "task"
    assert data["data"] == {"i": 0, "n": 5}
    assert data["time"].endswith("+00:00")


async def test_resume_after_forced_disconnects_has_no_gap_and_no_duplicate(start_node: StartNode) -> None:
    # A small replay page makes every reconnect page through the store while the producer keeps writing.
    node = await start_node(**{"feeds.replay_page": 7})
    headers = await auth_headers(node, "viewer")
    produced: list[int] = []
    received: list[int] = []
    rng = random.Random(6)

    async def produce() -> None:
        for _ in range(150):
            produced.extend(e.seq for e in await emit(node, rng.randint(1, 4)))
            await trio.sleep(rng.uniform(0, 0.004))
        produced.extend(e.seq for e in await emit(node, [Spec("test.end")]))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            cuts = 0
            while True:
                resume = {"Last-Event-ID": str(received[-1] if received else 0)}
                sse = await RawSse.open(node.url, TESTS, headers={**headers, **resume})
                assert sse.status == 200
                # Read a random number of events, then drop the socket mid-stream (the last time: to the end).
                for _ in range(rng.randint(10, 60) if cuts < 5 else 10**6):
                    message = await sse.next_message()
                    received.append(seq_of(message))
                    if message.event == "test.end":
                        break
                await sse.aclose()
                cuts += 1
                if received[-1:] == produced[-1:] and message.event == "test.end":
                    break
    assert cuts >= 5
    assert received == produced


async def test_last_event_id_header_wins_over_after_and_replays_then_goes_live(start_node: StartNode) -> None:
    node = await start_node(**{"feeds.replay_page": 4})
    headers = await auth_headers(node, "viewer")
    stored = [e.seq for e in await emit(node, 11)]
    with trio.fail_after(10):
        query = {"after": "0", **TESTS}
        async with await RawSse.open(node.url, query, {**headers, "Last-Event-ID": str(stored[5])}) as sse:
            replayed = [seq_of(await sse.next_message()) for _ in stored[6:]]
            await sse.wait_comment("live")
            live = [e.seq for e in await emit(node, 2)]
            assert [seq_of(await sse.next_message()) for _ in live] == live
    assert replayed == stored[6:]


async def test_filters_by_type_prefix_topic_task_and_core(start_node: StartNode) -> None:
    node = await start_node()
    headers = await auth_headers(node, "viewer")
    specs = [
        Spec("task.queued", "t1", "A"),
        Spec("task.succeeded", "t1", "A"),
        Spec("task.queued", "t2", "B"),
        Spec("lock.acquired", "res", None),
        Spec("lock.released", "res", None),
        Spec("alert.firing", "cpu", "A"),
        Spec("tasks.odd", "t1", "A"),  # "task" as a type prefix must not catch "tasks."
    ]
    cases: list[tuple[dict[str, str], list[int]]] = [
        ({"type": "task."}, [0, 1, 2]),
        ({"type": "task.queued,lock.acquired"}, [0, 2, 3]),
        ({"topic": "lock"}, [3, 4]),
        ({"topic": "task,alert"}, [0, 1, 2, 5]),
        ({"task_id": "t1"}, [0, 1, 6]),
        ({"core_id": "A", "type": "task."}, [0, 1]),
        ({"core_id": "A"}, [0, 1, 5, 6]),
    ]
    with trio.fail_after(20):
        for query, wanted in cases:
            stored = await emit(node, specs)
            expected = [stored[i].seq for i in wanted]
            after = str(stored[0].seq - 1)
            async with await RawSse.open(node.url, {**query, "after": after}, headers) as sse:
                got: list[int] = []
                while True:
                    frame = await sse.next()
                    if isinstance(frame, SseComment) and frame.text == "live":
                        break
                    if isinstance(frame, SseMessage):
                        got.append(seq_of(frame))
                assert got == expected, query
                # Live events are filtered the same way.
                live = await emit(node, specs)
                expected_live = [live[i].seq for i in wanted]
                assert [seq_of(await sse.next_message()) for _ in expected_live] == expected_live


async def test_heartbeat_comment_breaks_silence(start_node: StartNode) -> None:
    node = await start_node(**{"feeds.heartbeat": 0.2})
    headers = await auth_headers(node, "viewer")
    with trio.fail_after(5):
        async with await RawSse.open(node.url, headers=headers) as sse:
            await sse.wait_comment("live")
            started = trio.current_time()
            await sse.wait_comment("heartbeat")
            await sse.wait_comment("heartbeat")
            assert trio.current_time() - started >= 0.3


async def test_stream_outlives_quarts_response_timeout(start_node: StartNode) -> None:
    node = await start_node(**{"feeds.heartbeat": 0.1})
    node.app.config["RESPONSE_TIMEOUT"] = 0.3  # Quart would cut a normal response here
    headers = await auth_headers(node, "viewer")
    with trio.fail_after(5):
        async with await RawSse.open(node.url, headers=headers) as sse:
            await sse.wait_comment("live")
            await trio.sleep(0.8)
            [stored] = await emit(node, 1)
            assert seq_of(await sse.next_message()) == stored.seq


async def test_client_that_falls_behind_is_cut_off_and_resumes_losslessly(start_node: StartNode) -> None:
    node = await start_node(**{"feeds.buffer": 8})
    headers = await auth_headers(node, "viewer")
    with trio.fail_after(10):
        async with await RawSse.open(node.url, headers=headers) as sse:
            await sse.wait_comment("live")
            first = [e.seq for e in await emit(node, 3)]
            assert [seq_of(await sse.next_message()) for _ in first] == first
            # One commit publishes 50 events at once: more than the subscriber's buffer of 8.
            burst = [e.seq for e in await emit(node, 50)]
            final = await sse.next_message()
            assert final.event == "lagged"
            assert final.id == str(first[-1])
            assert json.loads(final.data)["last_seq"] == first[-1]
            with pytest.raises(EOFError):
                await sse.next()
        async with await RawSse.open(node.url, TESTS, {**headers, "Last-Event-ID": final.id}) as sse:
            assert [seq_of(await sse.next_message()) for _ in burst] == burst
            await sse.wait_comment("live")
    text = (await node.node.metrics.render()).decode()
    assert 'orch_feed_lagged_disconnects_total{transport="sse"} 1.0' in text


async def test_a_reader_that_stops_reading_is_cut_off_and_never_slows_others(start_node: StartNode) -> None:
    node = await start_node(**{"feeds.buffer": 16})
    headers = await auth_headers(node, "viewer")
    with trio.fail_after(30):
        async with (
            await RawSse.open(node.url, headers=headers) as stalled,
            await RawSse.open(node.url, headers=headers) as healthy,
        ):
            await stalled.wait_comment("live")
            await healthy.wait_comment("live")
            padding = "x" * 2000  # fill the socket buffers quickly
            produced: list[int] = []
            received: list[int] = []
            while node.node.feeds is not None and node.node.feeds.broadcast.statistics().lagged == 0:
                batch = [e.seq for e in await emit(node, 4, pad=padding)]
                produced += batch
                received += [seq_of(await healthy.next_message()) for _ in batch]
                assert len(produced) < 20_000, "the stalled reader was never cut off"
            assert received == produced
            # The stalled reader, once it reads again, gets what was sent, then `lagged`, then EOF.
            seen: list[int] = []
            while True:
                message = await stalled.next_message()
                if message.event == "lagged":
                    break
                seen.append(seq_of(message))
            assert seen == produced[: len(seen)]
            assert message.id is not None and int(message.id) == (seen[-1] if seen else 0)


async def test_events_of_one_commit_share_a_body_chunk(
    start_node: StartNode,
) -> None:
    node = await start_node()
    headers = await auth_headers(node, "viewer")
    with trio.fail_after(10):
        async with await RawSse.open(node.url, headers=headers) as sse:
            await sse.wait_comment("live")
            chunks_before = len(sse.chunks)
            stored = [e.seq for e in await emit(node, 40)]
            assert [seq_of(await sse.next_message()) for _ in stored] == stored
            assert len(sse.chunks) - chunks_before < 5  # 40 events, a handful of writes at most
    text = (await node.node.metrics.render()).decode()
    delivered = _metric(text, 'orch_feed_events_delivered_total{transport="sse"}')
    writes = _metric(text, 'orch_feed_writes_total{transport="sse"}')
    assert delivered == 40 and writes < 5


async def test_connections_gauge_follows_open_streams(start_node: StartNode) -> None:
    node = await start_node()
    headers = await auth_headers(node, "viewer")
    gauge = 'orch_feed_connections{transport="sse"}'
    with trio.fail_after(10):
        async with await RawSse.open(node.url, headers=headers) as sse:
            await sse.wait_comment("live")
            assert _metric((await node.node.metrics.render()).decode(), gauge) == 1
        for _ in range(100):  # the server notices the closed socket promptly
            if _metric((await node.node.metrics.render()).decode(), gauge) == 0:
                break
            await trio.sleep(0.02)
        assert _metric((await node.node.metrics.render()).decode(), gauge) == 0
        assert node.node.feeds is not None and node.node.feeds.broadcast.statistics().subscribers == 0


@pytest.mark.parametrize(
    ("query", "headers", "field"),
    [
        ({"after": "-1"}, {}, "after"),
        ({"after": "ten"}, {}, "after"),
        ({}, {"Last-Event-ID": "1e3"}, "Last-Event-ID"),
        ({"type": "task.,"}, {}, "type"),
        ({"type": "ta sk"}, {}, "type"),
        ({"topic": ",".join(f"t{i}" for i in range(40))}, {}, "topic"),
        ({"task_id": "x" * 300}, {}, "task_id"),
    ],
)
async def test_bad_filters_and_seqs_are_422_naming_the_parameter(
    start_node: StartNode, query: dict[str, str], headers: dict[str, str], field: str
) -> None:
    node = await start_node()
    auth = await auth_headers(node, "viewer")
    async with httpx.AsyncClient(base_url=node.url, headers=auth) as http:
        response = await http.get("/sse/events", params=query, headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field


async def test_auth_is_required_and_checked_by_role(start_node: StartNode) -> None:
    node = await start_node()
    async with httpx.AsyncClient(base_url=node.url) as http:
        anonymous = await http.get("/sse/events")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        bad = await http.get("/sse/events", headers={"Authorization": "Bearer not-a-token"})
        assert bad.status_code == 401
        system = await http.get("/sse/events", headers=await auth_headers(node, "system"))
        assert system.status_code == 403  # workers do not stream events (roles.py: event.stream)
    with trio.fail_after(5):
        for role in ("viewer", "operator", "admin"):
            async with await RawSse.open(node.url, headers=await auth_headers(node, role)) as sse:
                assert sse.status == 200, role


async def test_graceful_shutdown_sends_a_final_event_and_ends_the_stream(start_node: StartNode) -> None:
    node = await start_node(**{"server.shutdown_grace": 10.0})
    headers = await auth_headers(node, "viewer")
    with trio.fail_after(5):  # well inside the grace period: the stream does not hold shutdown up
        async with await RawSse.open(node.url, headers=headers) as sse:
            await sse.wait_comment("live")
            [stored] = await emit(node, 1)
            assert seq_of(await sse.next_message()) == stored.seq
            node.node.request_shutdown()
            final = await sse.next_message()
            assert final.event == "shutdown"
            assert final.id == str(stored.seq)
            with pytest.raises(EOFError):
                await sse.next()


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


async def test_the_stream_ends_when_the_token_expires(start_node: StartNode) -> None:
    node = await start_node(**{"security.access_token_ttl": 2.0, "feeds.heartbeat": 0.2})
    headers = await auth_headers(node, "viewer")
    with trio.fail_after(10):
        async with await RawSse.open(node.url, TESTS, headers) as sse:
            await sse.wait_comment("live")
            [stored] = await emit(node, 1)
            assert seq_of(await sse.next_message()) == stored.seq
            final = await sse.next_message()
            assert final.event == "expired" and final.id == str(stored.seq)
            with pytest.raises(EOFError):
                await sse.next()
    # (Token checks allow 30 s of clock leeway; streams end at the token's own expiry.)


async def test_live_events_of_separate_commits_within_the_coalescing_window_share_a_write(
    start_node: StartNode,
) -> None:
    node = await start_node(**{"feeds.coalesce": 2.0})  # far longer than five small commits take
    headers = await auth_headers(node, "viewer")
    with trio.fail_after(20):
        async with await RawSse.open(node.url, TESTS, headers=headers) as sse:
            await sse.wait_comment("live")
            stored = [(await emit(node, 1))[0].seq for _ in range(5)]
            assert [seq_of(await sse.next_message()) for _ in stored] == stored
    text = (await node.node.metrics.render()).decode()
    assert _metric(text, 'orch_feed_events_delivered_total{transport="sse"}') == 5
    assert _metric(text, 'orch_feed_writes_total{transport="sse"}') == 1
