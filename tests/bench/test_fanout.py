"""Fan-out subscribers: the SSE parser, websocket message decoding, the completeness check, and real
SSE/websocket subscribers against the baseline broadcaster."""

from __future__ import annotations

import json
import time
from typing import Literal

import httpx
import pytest

from bench.harness.fanout import FanoutPlan, SseParser, Subscribers, event_time, ws_events
from bench.harness.servers import ServerProcess
from bench.harness.verify import StreamDigest, check_acks_stored, check_streams_complete

STREAM = (
    b": subscribed\n\n"
    b'id: 1\nevent: task.queued\ndata: {"ts": 1700000000.5}\n\n'
    b'id: 2\r\nevent: task.claimed\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
    b"event: no-id\ndata: x\n\n"
    b"id: 3\ndata: plain\n\n"
)


def chunked(data: bytes, size: int) -> bytes:
    out = b""
    for i in range(0, len(data), size):
        piece = data[i : i + size]
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
    return out


@pytest.mark.parametrize("split", [1, 3, 7, 1000])
@pytest.mark.parametrize("is_chunked", [False, True])
def test_sse_parser_yields_events_with_ids_whatever_the_read_boundaries(split: int, is_chunked: bool) -> None:
    wire = chunked(STREAM, 5) if is_chunked else STREAM
    parser = SseParser(chunked=is_chunked)
    events = []
    for i in range(0, len(wire), split):
        events += parser.feed(wire[i : i + split])
    assert [(seq, kind) for seq, kind, _ in events] == [
        (1, "task.queued"),
        (2, "task.claimed"),
        (3, "message"),
    ]
    assert events[1][2] == '{"a":\n1}'
    assert event_time(events[0][2]) == 1700000000.5


def test_websocket_messages_decode_single_batched_and_wrapped_events() -> None:
    assert [e[0] for e in ws_events(json.dumps({"seq": 4, "type": "t"}))] == [4]
    assert [e[0] for e in ws_events(json.dumps([{"seq": 5}, {"id": 6}]))] == [5, 6]
    assert [e[1] for e in ws_events(json.dumps({"events": [{"seq": 7, "event": "x"}]}))] == ["x"]
    assert ws_events(json.dumps({"type": "subscribed"})) == []
    assert ws_events("not json") == []


def test_event_time_reads_epoch_or_iso_timestamps() -> None:
    assert event_time({"created_at": "2026-01-01T00:00:00+00:00"}) == 1767225600.0
    assert event_time('{"timestamp": 1767225600}') == 1767225600.0
    assert event_time('{"other": 1}') is None


def test_completeness_check_catches_gaps_duplicates_and_disorder() -> None:
    def digest(*seqs: int) -> StreamDigest:
        d = StreamDigest()
        for s in seqs:
            d.add(s)
        return d

    assert check_streams_complete("ok", {"a": digest(1, 2, 3), "b": digest(1, 2, 3)}, [1, 2, 3]).ok
    assert not check_streams_complete("gap", {"a": digest(1, 3)}, [1, 2, 3]).ok
    assert not check_streams_complete("dup", {"a": digest(1, 2, 2, 3)}, [1, 2, 3]).ok
    bad = check_streams_complete("order", {"a": digest(2, 1, 3)}, [1, 2, 3])
    assert not bad.ok and "1 out of order" in bad.detail
    assert not check_streams_complete("none", {}, [1]).ok


def test_acknowledged_ids_must_all_be_stored_once() -> None:
    assert check_acks_stored("ok", ["a", "b"], ["a", "b", "c"]).ok
    missing = check_acks_stored("missing", ["a", "z"], ["a"])
    assert not missing.ok and "'z'" in missing.detail
    assert not check_acks_stored("twice", ["a", "a"], ["a"]).ok
    assert not check_acks_stored("empty", [], ["a"]).ok


@pytest.mark.integration
@pytest.mark.parametrize(("kind", "path", "processes"), [("sse", "/sse/events", 2), ("ws", "/ws/events", 1)])
def test_every_subscriber_gets_every_published_event_in_order(
    baseline: ServerProcess, kind: Literal["sse", "ws"], path: str, processes: int
) -> None:
    plan = FanoutPlan(baseline.url, kind, path, subscribers=20, processes=processes, event_type="bench.tick")
    with Subscribers(plan) as subs:
        assert (subs.connected, dict(subs.failures)) == (20, {})
        deadline = time.monotonic() + 10
        while httpx.get(f"{baseline.url}/subscribers").json()[kind] < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        ranges = [httpx.post(f"{baseline.url}/publish", json={"count": 10}).json() for _ in range(3)]
        result = subs.stop(after=0.2, until_seq=ranges[-1]["last"], max_wait=10)
    expected = [s for r in ranges for s in range(r["first"], r["last"] + 1)]
    check = check_streams_complete("fan-out", result.digests, expected)
    assert check.ok, check.detail
    assert result.deliveries == 20 * 30
    assert len(result.latencies) == 2 * 30  # every 10th connection is sampled
    assert all(0 <= latency < 10 for latency in result.latencies)
