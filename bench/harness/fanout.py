"""Fan-out subscribers: thousands of SSE or websocket connections held by spawned processes, each
checking that it got every event once and in order (a `StreamDigest` per connection) and sampling
end-to-end latency (receive time minus the event's own timestamp; one clock, one box).

    with Subscribers(FanoutPlan(url, "sse", "/sse/events", subscribers=1000)) as subs:
        ...publish (e.g. run_load with a paced group)...
        result = subs.stop(after=1.0, until_seq=last)  # wait for the last events, close, report

SSE connections are raw sockets (request, head, chunked decoding, SSE parsing): an httpx stream per
subscriber would cost far more memory and CPU than the server side being measured.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import resource
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any, Literal
from urllib.parse import urlsplit

import trio
import trio_websocket

from bench.harness.load import LoadError, share
from bench.harness.rawhttp import HttpProtocolError, parse_head
from bench.harness.safety import check_loopback
from bench.harness.verify import StreamDigest

__all__ = ["FanoutPlan", "FanoutResult", "SseParser", "Subscribers", "event_time", "ws_events"]

Event = tuple[int, str, Any]  # seq, type, data (SSE: the raw `data:` text; websocket: the decoded object)


@dataclass(frozen=True, slots=True)
class FanoutPlan:
    """`subscribers` connections to `base_url + path` over `processes` processes. `first_message` is
    sent on each websocket after the handshake (subscribe / auth). Only events of type `event_type`
    count, when given. Latency is sampled on every `sample_every`-th connection."""

    base_url: str
    kind: Literal["sse", "ws"]
    path: str
    subscribers: int
    processes: int = 2
    headers: Mapping[str, str] = field(default_factory=dict)
    first_message: str | None = None
    event_type: str | None = None
    connect_concurrency: int = 100
    setup_deadline: float = 180.0
    max_seconds: float = 1800.0  # a subscriber process never outlives this, whatever the parent does
    sample_every: int = 10

    def __post_init__(self) -> None:
        check_loopback(self.base_url)
        if self.subscribers < 1 or self.processes < 1:
            raise ValueError("need subscribers >= 1 and processes >= 1")


@dataclass(slots=True)
class FanoutResult:
    """What the subscribers saw. `first_receive`/`last_receive` are wall-clock times."""

    connected: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    dropped: int = 0
    deliveries: int = 0
    digests: dict[str, StreamDigest] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    first_receive: float = float("inf")
    last_receive: float = 0.0
    cpu_seconds: float = 0.0

    def merge(self, other: FanoutResult) -> None:
        """Add one process's report."""
        self.connected += other.connected
        self.failures.update(other.failures)
        self.dropped += other.dropped
        self.deliveries += other.deliveries
        self.digests.update(other.digests)
        self.latencies.extend(other.latencies)
        self.first_receive = min(self.first_receive, other.first_receive)
        self.last_receive = max(self.last_receive, other.last_receive)
        self.cpu_seconds += other.cpu_seconds


class Subscribers:
    """Spawn the subscriber processes and wait until every connection is open (or failed)."""

    def __init__(self, plan: FanoutPlan) -> None:
        self.plan = plan
        self.connected = 0
        self.failures: Counter[str] = Counter()
        self._links: list[tuple[Any, Connection]] = []
        self.result: FanoutResult | None = None

    def __enter__(self) -> Subscribers:
        ctx = mp.get_context("spawn")
        try:
            for index in range(self.plan.processes):
                parent_end, child_end = ctx.Pipe()
                process = ctx.Process(target=_child_main, args=(self.plan, index, child_end), daemon=True)
                process.start()
                child_end.close()
                self._links.append((process, parent_end))
            for _, conn in self._links:
                ready = _receive(conn, self.plan.setup_deadline, "ready")
                self.connected += ready.connected
                self.failures.update(ready.failures)
        except BaseException:
            self._reap()
            raise
        return self

    def stop(self, after: float = 1.0, until_seq: int | None = None, max_wait: float = 30.0) -> FanoutResult:
        """Keep receiving for `after` more seconds, and then until every open connection has seen
        `until_seq` (at most `max_wait` seconds more); then close every connection and merge reports."""
        stop = _Stop(time.time() + after, until_seq, max_wait)
        for _, conn in self._links:
            conn.send(stop)
        merged = FanoutResult()
        for _, conn in self._links:
            merged.merge(_receive(conn, after + max_wait + 60.0, "report"))
        self.result = merged
        return merged

    def __exit__(self, *exc_info: object) -> None:
        self._reap()

    def _reap(self) -> None:
        for process, conn in self._links:
            if process.is_alive() and self.result is None:
                with contextlib.suppress(OSError):
                    conn.send(_Stop(0.0, None, 0.0))  # stop now
            process.join(timeout=10.0)
            if process.is_alive():
                process.kill()
                process.join(timeout=5.0)
            conn.close()
        self._links.clear()


@dataclass(frozen=True, slots=True)
class _Stop:
    at: float  # wall clock
    until_seq: int | None
    max_wait: float


def _receive(conn: Connection, within: float, what: str) -> FanoutResult:
    if not conn.poll(within):
        raise LoadError(f"a subscriber process sent no {what} within {within:.0f} s")
    try:
        message = conn.recv()
    except EOFError:
        raise LoadError(f"a subscriber process died before its {what}") from None
    if isinstance(message, str):
        raise LoadError(f"a subscriber process failed: {message}")
    assert isinstance(message, FanoutResult)
    return message


def _child_main(plan: FanoutPlan, index: int, conn: Connection) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        result = trio.run(_child, plan, index, conn)
    except BaseException as exc:  # the parent turns this into LoadError
        conn.send(f"{type(exc).__name__}: {exc}")
        raise
    conn.send(result)


@dataclass(slots=True)
class _State:
    plan: FanoutPlan
    result: FanoutResult
    expected: int
    nursery: trio.Nursery
    settled: trio.Event = field(default_factory=trio.Event)

    def settle(self) -> None:
        if self.result.connected + sum(self.result.failures.values()) >= self.expected:
            self.settled.set()

    def deliver(self, digest: StreamDigest, events: list[Event], now: float, sample: bool) -> None:
        wanted = self.plan.event_type
        result = self.result
        for seq, kind, data in events:
            if wanted is not None and kind != wanted:
                continue
            digest.add(seq)
            result.deliveries += 1
            if sample:
                stamp = event_time(data)
                if stamp is not None:
                    result.latencies.append(now - stamp)
        if events:
            result.first_receive = min(result.first_receive, now)
            result.last_receive = now


async def _child(plan: FanoutPlan, index: int, conn: Connection) -> FanoutResult:
    count = share(plan.subscribers, plan.processes, index)
    first = sum(share(plan.subscribers, plan.processes, i) for i in range(index))
    result = FanoutResult()
    limiter = trio.CapacityLimiter(plan.connect_concurrency)
    cpu_before = time.process_time()
    with trio.move_on_after(plan.max_seconds):
        async with trio.open_nursery() as nursery:
            state = _State(plan, result, count, nursery)
            for n in range(first, first + count):
                nursery.start_soon(_subscriber, state, f"s{n}", n % plan.sample_every == 0, limiter)
            with trio.move_on_after(plan.setup_deadline):
                await state.settled.wait()
            conn.send(FanoutResult(connected=state.result.connected, failures=Counter(state.result.failures)))
            stop: _Stop = await trio.to_thread.run_sync(conn.recv, abandon_on_cancel=True)
            await trio.sleep(max(0.0, stop.at - time.time()))
            if stop.until_seq is not None:
                with trio.move_on_after(stop.max_wait):
                    # Polling: the digests are updated by thousands of subscriber tasks.
                    while any(d.last < stop.until_seq for d in result.digests.values()):  # noqa: ASYNC110
                        await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    result.cpu_seconds = time.process_time() - cpu_before
    return result


async def _subscriber(state: _State, key: str, sample: bool, limiter: trio.CapacityLimiter) -> None:
    runner = _sse if state.plan.kind == "sse" else _ws
    try:
        await runner(state, key, sample, limiter)
    except (OSError, HttpProtocolError, trio.BrokenResourceError, trio_websocket.HandshakeError) as exc:
        if key in state.result.digests:
            state.result.dropped += 1
        else:
            state.result.failures[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
            state.settle()
    except trio_websocket.ConnectionClosed:
        state.result.dropped += 1


async def _sse(state: _State, key: str, sample: bool, limiter: trio.CapacityLimiter) -> None:
    plan = state.plan
    parts = urlsplit(plan.base_url)
    assert parts.hostname is not None and parts.port is not None
    headers = "".join(f"{k}: {v}\r\n" for k, v in plan.headers.items())
    request = (
        f"GET {plan.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n{headers}\r\n"
    )
    async with limiter:
        stream = await trio.open_tcp_stream(parts.hostname, parts.port)
        await stream.send_all(request.encode("latin-1"))
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = await stream.receive_some(65536)
            if not chunk:
                raise HttpProtocolError("closed before the response head")
            buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    status, response_headers = parse_head(head)
    if status != 200:
        await stream.aclose()
        raise HttpProtocolError(f"HTTP {status}")
    parser = SseParser(chunked="chunked" in response_headers.get("transfer-encoding", ""))
    digest = state.result.digests[key] = StreamDigest()
    state.result.connected += 1
    state.settle()
    async with stream:
        data = rest
        while True:
            if data:
                state.deliver(digest, parser.feed(data), time.time(), sample)
            data = await stream.receive_some(65536)
            if not data:
                state.result.dropped += 1
                return


async def _ws(state: _State, key: str, sample: bool, limiter: trio.CapacityLimiter) -> None:
    plan = state.plan
    url = plan.base_url.replace("http://", "ws://", 1) + plan.path
    extra = [(k.encode(), v.encode()) for k, v in plan.headers.items()]
    async with limiter:
        ws = await trio_websocket.connect_websocket_url(state.nursery, url, extra_headers=extra)
    try:
        if plan.first_message is not None:
            await ws.send_message(plan.first_message)
        digest = state.result.digests[key] = StreamDigest()
        state.result.connected += 1
        state.settle()
        while True:
            message = await ws.get_message()
            state.deliver(digest, ws_events(message), time.time(), sample)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            await ws.aclose()


class SseParser:
    """Incremental text/event-stream parser (with optional chunked transfer decoding). Events without
    an `id:` (comments, heartbeats) are skipped; `id` must be the integer event seq."""

    def __init__(self, *, chunked: bool) -> None:
        self._chunked = chunked
        self._raw = b""
        self._text = b""

    def feed(self, data: bytes) -> list[Event]:
        """Events completed by `data`."""
        self._text += self._dechunk(data) if self._chunked else data
        if b"\r" in self._text:
            self._text = self._text.replace(b"\r\n", b"\n")
        *blocks, self._text = self._text.split(b"\n\n")
        events = []
        for block in blocks:
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        return events

    def _dechunk(self, data: bytes) -> bytes:
        self._raw += data
        out = []
        while True:
            eol = self._raw.find(b"\r\n")
            if eol < 0:
                break
            size = int(self._raw[:eol].split(b";")[0], 16)
            if size == 0:  # end of stream
                self._raw = b""
                break
            if len(self._raw) < eol + 2 + size + 2:
                break
            out.append(self._raw[eol + 2 : eol + 2 + size])
            self._raw = self._raw[eol + 2 + size + 2 :]
        return b"".join(out)


def _parse_block(block: bytes) -> Event | None:
    seq: int | None = None
    kind = "message"
    data: list[str] = []
    for line in block.decode("utf-8", errors="replace").split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id" and value.isdigit():
            seq = int(value)
        elif name == "event":
            kind = value
        elif name == "data":
            data.append(value)
    return None if seq is None else (seq, kind, "\n".join(data))


def ws_events(message: str | bytes) -> list[Event]:
    """Events in one websocket message: an event object, a list of them, or `{"events": [...]}`.
    An event needs an integer `seq` (or `id`); other messages (acks, heartbeats) yield nothing."""
    try:
        doc = json.loads(message)
    except ValueError:
        return []
    items = doc.get("events", [doc]) if isinstance(doc, dict) else doc if isinstance(doc, list) else []
    events = []
    for item in items:
        if not isinstance(item, dict):
            continue
        seq = item.get("seq", item.get("id"))
        if isinstance(seq, int):
            events.append((seq, str(item.get("type", item.get("event", "message"))), item))
    return events


_TIME_KEYS = ("ts", "timestamp", "created_at", "at", "time")


def event_time(data: Any) -> float | None:
    """The event's own timestamp (epoch seconds or ISO 8601), from its JSON text or decoded object."""
    doc = data
    if isinstance(data, str):
        try:
            doc = json.loads(data)
        except ValueError:
            return None
    if not isinstance(doc, dict):
        return None
    for key in _TIME_KEYS:
        value = doc.get(key)
        if isinstance(value, int | float) and value > 1e9:
            return float(value)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value).timestamp()
            except ValueError:
                continue
    return None
