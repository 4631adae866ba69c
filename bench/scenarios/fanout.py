"""SSE and websocket fan-out: N subscribers held open, events published at a steady rate, every
subscriber checked to get every event once and in order; delivery rate, end-to-end latency (event
timestamp to receipt), server RSS per connection.

Events per second are chosen so that N subscribers x events/s ~ `DELIVERIES_PER_S` (25,000), except
that at least 2 events/s are sent. The baseline is `baseline_app`'s broadcaster (`POST /publish`);
the node side runs once its feed routes exist (`/sse/events`, `/ws/events`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import httpx

from bench.harness.fanout import FanoutPlan, FanoutResult, Subscribers
from bench.harness.load import Done, Group, HttpAnswer, HttpOp, LoadPlan, Op, OpFailed, run_load
from bench.harness.report import Check, Measurement, ScenarioResult, TargetCheck, cpu_ms_per_op
from bench.harness.runner import BASELINE, NODE, Bench, Options, Target, rss_mb
from bench.harness.servers import ResourceMeter
from bench.harness.stats import summarize_latencies
from bench.harness.verify import check_streams_complete, stored_values
from bench.scenarios.dispatch import DispatchBatch, DispatchOne

__all__ = ["Feed", "PublishTicks", "run_sse", "run_ws", "settled_cursor"]

DELIVERIES_PER_S = 25_000
SETTLE = 1.0  # seconds after connecting (registration) and after publishing (last deliveries)
PUBLISHERS = 4


@dataclass(frozen=True, slots=True)
class PublishTicks(HttpOp):
    """The baseline's publisher: `count` events per call."""

    method: str = "POST"
    path: str = "/publish"
    expect: tuple[int, ...] = (201,)
    count: int = 1

    def request(self, seq: int) -> tuple[str, str, bytes | None]:
        """POST {"count": n}."""
        del seq
        return self.method, self.path, b'{"count": %d}' % self.count

    def accept(self, response: HttpAnswer, seq: int) -> Done:
        """The published range."""
        if response.status_code not in self.expect:
            raise OpFailed(f"HTTP {response.status_code}", response.text[:300])
        body = response.json()
        return Done(items=body["last"] - body["first"] + 1)


def baseline_cursor(url: str) -> int:
    """The baseline's last published seq."""
    seq: int = httpx.get(f"{url}/subscribers", timeout=30.0).json()["seq"]
    return seq


def settled_cursor(
    cursor: Callable[[str], int], url: str, *, quiet: float = SETTLE, limit: float = 30.0
) -> int:
    """The feed's last seq once it has not moved for `quiet` seconds (checked for at most `limit`).

    A paced publisher that fell behind keeps calling until the load's drain deadline cancels it; a call
    cancelled after its request was sent may still be published by the server after the load returned.
    Reading the cursor at once then counts 1-4 events fewer than the subscribers get (one per publisher).
    """
    deadline = time.monotonic() + limit
    last = cursor(url)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = cursor(url)
        if now == last:
            break
        last = now
    return last


def baseline_expected(url: str, before: int) -> list[int]:
    """Everything the baseline published after `before` (the server's own count, so a publish call
    that timed out on the client side is still expected: it was published)."""
    return list(range(before + 1, baseline_cursor(url) + 1))


@dataclass(frozen=True, slots=True)
class Feed:
    """How to subscribe to and publish on one target's feed, and which seqs every subscriber must get."""

    path: str
    publisher: Callable[[int], Op]  # events per call -> op
    cursor: Callable[[str], int]  # url -> the feed's last seq now
    expected: Callable[
        [str, int], list[int]
    ]  # url, cursor before publishing -> seqs every subscriber must get
    headers: dict[str, str] = field(default_factory=dict)
    first_message: str | None = None
    event_type: str | None = None


def baseline_feed(kind: Literal["sse", "ws"]) -> Feed:
    """The hello-world broadcaster."""
    path = "/sse/events" if kind == "sse" else "/ws/events"
    return Feed(path, _ticks, baseline_cursor, baseline_expected, event_type="bench.tick")


def _ticks(count: int) -> Op:
    return PublishTicks(count=count)


def measure_fanout(
    bench: Bench, target: Target, feed: Feed, kind: Literal["sse", "ws"], subscribers: int, run: int
) -> Measurement:
    """Connect, publish for `options.seconds`, collect, check; one measurement."""
    opts = bench.options
    server = target.server
    events_per_s = max(2.0, DELIVERIES_PER_S / subscribers)
    per_call = max(1, round(events_per_s / 50))  # at most ~50 publish calls per second
    plan = FanoutPlan(server.url, kind, feed.path, subscribers, processes=2, headers=feed.headers,
                      first_message=feed.first_message, event_type=feed.event_type)  # fmt: skip
    rss_before = rss_mb(server)
    started = time.perf_counter()
    with Subscribers(plan) as subs:
        connect_s = time.perf_counter() - started
        time.sleep(SETTLE)
        rss_connected = rss_mb(server)
        # Several publishers: one slow answer must not hold back the offered rate.
        publish = Group("publish", feed.publisher(per_call), clients=PUBLISHERS, rate=events_per_s / per_call)
        before = feed.cursor(server.url)
        with ResourceMeter(server.pid) as meter:
            load = run_load(LoadPlan(server.url, (publish,), opts.seconds, processes=1, headers=feed.headers))
            settled_cursor(feed.cursor, server.url)
            expected = feed.expected(server.url, before)
            fan = subs.stop(after=SETTLE, until_seq=expected[-1] if expected else None)
    usage = meter.usage
    assert usage is not None
    cpu, box = usage.within(load.started_at, fan.last_receive)
    check = check_streams_complete(f"{target.name} {kind} c={subscribers} run {run}", fan.digests, expected)
    bench.result.checks.append(check)
    failures = sum(subs.failures.values())
    if failures:
        bench.result.checks.append(
            Check(
                f"{target.name} {kind} c={subscribers}: all subscribers connect",
                False,
                str(dict(subs.failures)),
            )
        )
    window = max(fan.last_receive - load.started_at, 1e-9)
    m = Measurement(
        target=target.name,
        group=f"{kind} fan-out",
        clients=subscribers,
        run=run,
        ops=fan.deliveries,
        items=len(expected),
        errors=failures + fan.dropped + sum(load.groups["publish"].errors.values()),
        elapsed=window,
        rps=fan.deliveries / window,
        items_ps=len(expected) / window,
        latency=summarize_latencies(fan.latencies),
        server_cpu_pct=cpu,
        server_rss_start_mb=rss_before,
        server_rss_peak_mb=usage.rss_peak_mb,
        server_rss_end_mb=usage.rss_end_mb,
        server_fds_peak=usage.fds_peak,
        client_cpu_pct=(fan.cpu_seconds + load.client_cpu_seconds) / usage.seconds * 100.0,
        box_cpu_pct=box,
        reference=target.reference,
        server_cpu_ms_per_op=cpu_ms_per_op(cpu, fan.deliveries / window),
        extra=_extra(fan, subscribers, rss_before, rss_connected, connect_s, events_per_s),
        server_samples=list(usage.samples),
    )
    bench.result.runs.append(m)
    per_conn = m.extra["rss_per_conn_kb"]
    print(
        f"  {target.name:9} {kind} c={subscribers:<6} run {run}: {m.rps:9,.0f} deliveries/s  "
        f"p99 {m.latency.p99_ms:7.1f} ms  RSS/conn {per_conn:.1f} KB  {check.detail}",
        file=sys.stderr,
    )
    return m


def _extra(
    fan: FanoutResult, n: int, before: float, connected: float, connect_s: float, rate: float
) -> dict[str, float]:
    return {
        "requested": float(n),
        "connected": float(fan.connected),
        "dropped": float(fan.dropped),
        "rss_per_conn_kb": (connected - before) * 1024.0 / max(fan.connected, 1),
        "rss_connected_mb": connected,
        "connect_s": connect_s,
        "events_per_s_offered": rate,
    }


def _run(kind: Literal["sse", "ws"], options: Options) -> ScenarioResult:
    name = "sse" if kind == "sse" else "ws-feed"
    with Bench(name, options) as bench:
        feeds: dict[str, Feed] = {BASELINE: baseline_feed(kind)}
        path = "/sse/events" if kind == "sse" else "/ws/events"
        if bench.node is not None and bench.has_route(path):
            feeds[NODE] = node_feed(bench, kind)
        else:
            bench.skip(f"node {path}: not served yet")
        for subscribers in options.clients:
            for run_index in range(options.runs):
                for target in bench.targets(run_index):
                    if target.name in feeds:
                        measure_fanout(bench, target, feeds[target.name], kind, subscribers, run_index)
        bench.result.finish()
        _targets(bench.result, kind)
    return bench.result


def node_feed(bench: Bench, kind: Literal["sse", "ws"]) -> Feed:
    """The node's feed of `task.queued` events, published by dispatching (batches when > 1 per call).
    What every subscriber must get is read from the node's event table (committed = published)."""
    db = bench.db_path

    def cursor(url: str) -> int:
        return int(stored_values(db, "SELECT COALESCE(MAX(seq), 0) FROM events")[0])

    def expected(url: str, before: int) -> list[int]:
        sql = "SELECT seq FROM events WHERE seq > ? AND type = 'task.queued' ORDER BY seq"
        return [int(seq) for seq in stored_values(db, sql, (before,))]

    if kind == "sse":
        return Feed("/sse/events?type=task.queued", _dispatches, cursor, expected, bench.auth_headers(),
                    event_type="task.queued")  # fmt: skip
    subscribe = json.dumps({"op": "subscribe", "id": "bench", "types": ["task.queued"]})
    return Feed("/ws/events", _dispatches, cursor, expected, bench.auth_headers(), subscribe, "task.queued")


def _dispatches(count: int) -> Op:
    return DispatchBatch(size=count) if count > 1 else DispatchOne()


def _targets(result: ScenarioResult, kind: str) -> None:
    group = f"{kind} fan-out"
    for row in result.summary:
        if row.target != NODE or row.group != group:
            continue
        if row.clients == 1000:
            result.targets.append(
                TargetCheck(f"node {kind} deliveries/s at 1,000 subscribers", row.rps, ">=", 20_000, "/s")
            )
            result.targets.append(
                TargetCheck(f"node {kind} p99 end-to-end at 1,000", row.latency.p99_ms, "<", 1000, " ms")
            )
        if row.clients == 10_000:
            result.targets.append(
                TargetCheck(
                    f"node RSS with 10,000 {kind} subscribers", row.server_rss_peak_mb, "<", 600, " MB"
                )
            )


def run_sse(options: Options) -> ScenarioResult:
    """`python -m bench sse`."""
    return _run("sse", options)


def run_ws(options: Options) -> ScenarioResult:
    """`python -m bench ws-feed`."""
    return _run("ws", options)
