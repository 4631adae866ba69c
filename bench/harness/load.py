"""Load generator: N concurrent clients spread over P worker processes, bounded in count AND time.

A scenario describes *what one client does* as an `Op`: `op.open(env)` is an async context manager that
yields a `call(seq) -> Done` coroutine function; each client opens its op once (e.g. logs in, opens a
websocket), then calls it in a loop until the run's deadline or the group's op budget is spent. A call
raises `OpFailed` (or any exception) for a bad answer; it is counted as an error, never retried.

Every client has its own HTTP connection, `env.http`: by default the lean `RawHttpConnection`
(~0.2 ms client CPU per request), or with `client="httpx"` an `httpx.AsyncClient` (~1.1 ms, which on a
2-core box makes the load generator the bottleneck; see bench/README.md). Never one shared httpx pool:
httpcore rescans every pooled connection per request, which made 50 clients on one pool ~5x slower.
Both answer with an object that has `status_code`, `headers`, `text` and `json()`.
Processes are *spawned*, so ops must be picklable (frozen dataclasses in an importable module, e.g.
`bench.scenarios.*`).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Literal, Protocol

import httpx
import trio

from bench.harness.rawhttp import RawHttpConnection
from bench.harness.safety import check_loopback

__all__ = [
    "Call",
    "ClientEnv",
    "Done",
    "Group",
    "GroupResult",
    "HttpAnswer",
    "HttpClient",
    "HttpOp",
    "LoadError",
    "LoadPlan",
    "LoadResult",
    "Op",
    "OpFailed",
    "run_load",
]

START_MARGIN = 0.2  # seconds between "go" being sent and the common start, so every process starts together


class LoadError(RuntimeError):
    """The load run could not start or a worker process failed."""


class OpFailed(Exception):
    """A call got a wrong answer; `reason` is the error's bucket in the results (keep it low-cardinality)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Done:
    """A successful call: how many units of work it carried (tasks in a batch) and ids to verify later."""

    items: int = 1
    acks: tuple[str, ...] = ()


class HttpAnswer(Protocol):
    """What both HTTP clients answer with (`httpx.Response` and `rawhttp.Reply` fit)."""

    @property
    def status_code(self) -> int:
        """The status."""
        ...

    @property
    def headers(self) -> Mapping[str, str]:
        """The headers (look names up in lower case)."""
        ...

    @property
    def text(self) -> str:
        """The body as text."""
        ...

    def json(self) -> Any:
        """The body as JSON."""
        ...


class HttpClient(Protocol):
    """One client's connection to the target."""

    async def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> HttpAnswer:
        """One request, its whole answer."""
        ...


class _Httpx:
    """`HttpClient` over an httpx.AsyncClient."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> HttpAnswer:
        return await self.client.request(method, path, content=body, headers=headers)


@dataclass(frozen=True, slots=True)
class ClientEnv:
    """What one client's op may use: the target, auth headers, its own HTTP connection and ids."""

    base_url: str
    headers: Mapping[str, str]
    http: HttpClient
    client_id: int
    clients: int
    process: int
    ssl_context: ssl.SSLContext


Call = Callable[[int], Awaitable[Done]]


class Op(Protocol):
    """What one client does, repeatedly: open once, then `call(seq)` with group-unique `seq` numbers."""

    def open(self, env: ClientEnv) -> AbstractAsyncContextManager[Call]:
        """Set up the client's session; yield the call."""
        ...


@dataclass(frozen=True, slots=True)
class HttpOp:
    """One HTTP request per call. Subclasses override `request` (per-seq body) and `accept` (checks, acks)."""

    method: str = "GET"
    path: str = "/health"
    expect: tuple[int, ...] = (200,)
    content_type: str = "application/json"

    def request(self, seq: int) -> tuple[str, str, bytes | None]:
        """Method, path and body for call number `seq`."""
        del seq
        return self.method, self.path, None

    def accept(self, response: HttpAnswer, seq: int) -> Done:
        """Check the answer; raise `OpFailed` when it is wrong."""
        del seq
        if response.status_code not in self.expect:
            raise OpFailed(f"HTTP {response.status_code}", response.text[:300])
        return Done()

    @asynccontextmanager
    async def open(self, env: ClientEnv) -> AsyncIterator[Call]:
        """Nothing to set up: every call is one request on the client's keep-alive connection."""
        headers = {"Content-Type": self.content_type}

        async def call(seq: int) -> Done:
            method, path, body = self.request(seq)
            response = await env.http.request(method, path, body, headers if body is not None else None)
            return self.accept(response, seq)

        yield call


@dataclass(frozen=True, slots=True)
class Group:
    """`clients` concurrent clients running `op`; at most `max_ops` calls in all; `rate` ops/s in total
    (None: closed loop, each client calls again as soon as it has its answer). `headers` are added to
    the plan's (e.g. a different principal's token for this group)."""

    name: str
    op: Op
    clients: int
    max_ops: int = 10_000_000
    rate: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.clients < 1 or self.max_ops < 1:
            raise ValueError(f"group {self.name!r}: clients and max_ops must be >= 1")
        if self.rate is not None and self.rate <= 0:
            raise ValueError(f"group {self.name!r}: rate must be positive")


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """One load run against `base_url` (loopback only): every group runs for `seconds`, then in-flight
    calls get `drain` seconds to finish before they are cancelled (and counted as unfinished). A single
    call slower than `call_deadline` counts as an error (TooSlowError)."""

    base_url: str
    groups: tuple[Group, ...]
    seconds: float
    processes: int = 2
    headers: Mapping[str, str] = field(default_factory=dict)
    drain: float = 5.0
    setup_deadline: float = 60.0
    call_deadline: float = 30.0
    client: Literal["raw", "httpx"] = "raw"

    def __post_init__(self) -> None:
        check_loopback(self.base_url)
        if not self.groups or self.seconds <= 0 or self.processes < 1:
            raise ValueError("a load plan needs groups, seconds > 0 and processes >= 1")
        if len({g.name for g in self.groups}) != len(self.groups):
            raise ValueError("group names must be unique")


@dataclass(slots=True)
class GroupResult:
    """One group's samples, merged over processes. `starts` are offsets (s) from the common start."""

    name: str
    clients: int
    ops: int = 0
    items: int = 0
    unfinished: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: dict[str, str] = field(default_factory=dict)
    starts: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    acks: list[str] = field(default_factory=list)

    def merge(self, other: GroupResult) -> None:
        """Add another process's share."""
        self.ops += other.ops
        self.items += other.items
        self.unfinished += other.unfinished
        self.errors.update(other.errors)
        for reason, sample in other.error_samples.items():
            self.error_samples.setdefault(reason, sample)
        self.starts.extend(other.starts)
        self.latencies.extend(other.latencies)
        self.acks.extend(other.acks)


@dataclass(slots=True)
class LoadResult:
    """A whole run: per-group results, wall time from the common start to the last finished client,
    and the load generator's own CPU time (to tell when the client, not the server, was the limit)."""

    groups: dict[str, GroupResult]
    elapsed: float
    client_cpu_seconds: float
    started_at: float


@dataclass(slots=True)
class _Report:
    groups: dict[str, GroupResult]
    elapsed: float
    cpu_seconds: float
    failure: str | None = None


def share(total: int, parts: int, index: int) -> int:
    """Part `index` of `total` split as evenly as possible into `parts`."""
    return total // parts + (1 if index < total % parts else 0)


def run_load(plan: LoadPlan) -> LoadResult:
    """Run `plan` in `plan.processes` spawned processes that start together; block until all report."""
    ctx = mp.get_context("spawn")
    links: list[tuple[Any, Connection]] = []  # (SpawnProcess, its pipe end)
    try:
        for index in range(plan.processes):
            parent_end, child_end = ctx.Pipe()
            process = ctx.Process(target=_child_main, args=(plan, index, child_end), daemon=True)
            process.start()
            child_end.close()
            links.append((process, parent_end))
        for _, conn in links:
            _expect(conn, plan.setup_deadline, "ready")
        started_at = time.time() + START_MARGIN
        for _, conn in links:
            conn.send(started_at)
        reports = [_expect(conn, plan.seconds + plan.drain + 30.0, "report") for _, conn in links]
    finally:
        for process, conn in links:
            process.join(timeout=5.0)
            if process.is_alive():
                process.kill()
                process.join(timeout=5.0)
            conn.close()
    merged = {g.name: GroupResult(g.name, g.clients) for g in plan.groups}
    for report in reports:
        for name, result in report.groups.items():
            merged[name].merge(result)
    return LoadResult(
        groups=merged,
        elapsed=max(r.elapsed for r in reports),
        client_cpu_seconds=sum(r.cpu_seconds for r in reports),
        started_at=started_at,
    )


def _expect(conn: Connection, within: float, what: str) -> _Report:
    if not conn.poll(within):
        raise LoadError(f"a load process sent no {what} within {within:.0f} s")
    try:
        message = conn.recv()
    except EOFError:
        raise LoadError(f"a load process died before its {what}") from None
    if isinstance(message, _Report) and message.failure is not None:
        raise LoadError(f"a load process failed: {message.failure}")
    assert isinstance(message, _Report)
    return message


def _child_main(plan: LoadPlan, index: int, conn: Connection) -> None:
    try:
        report = trio.run(_child, plan, index, conn)
    except BaseException as exc:  # the parent turns this into LoadError; nothing else would see it
        conn.send(_Report({}, 0.0, 0.0, failure=f"{type(exc).__name__}: {exc}"))
        raise
    conn.send(report)


@dataclass(slots=True)
class _Shared:
    """State one process's clients share."""

    plan: LoadPlan
    process: int
    ssl_context: ssl.SSLContext
    go: trio.Event = field(default_factory=trio.Event)
    expected: int = 0
    opened: int = 0
    open_failures: list[str] = field(default_factory=list)
    all_settled: trio.Event = field(default_factory=trio.Event)
    start: float = 0.0  # perf_counter at the common start
    end: float = 0.0
    hard_deadline: float = 0.0  # trio clock

    def settle(self) -> None:
        """One more client has opened its session or failed to."""
        if self.opened + len(self.open_failures) >= self.expected:
            self.all_settled.set()


async def _child(plan: LoadPlan, index: int, conn: Connection) -> _Report:
    shared = _Shared(plan, index, ssl.create_default_context())
    results: dict[str, GroupResult] = {}
    async with trio.open_nursery() as nursery:
        for group in plan.groups:
            clients = share(group.clients, plan.processes, index)
            if clients == 0:
                continue
            results[group.name] = GroupResult(group.name, clients)
            first_id = sum(share(group.clients, plan.processes, i) for i in range(index))
            for client_id in range(first_id, first_id + clients):
                shared.expected += 1
                nursery.start_soon(_client, shared, group, client_id, results[group.name])
        with trio.move_on_after(plan.setup_deadline):
            await shared.all_settled.wait()
        if shared.open_failures or shared.opened < shared.expected:
            nursery.cancel_scope.cancel()
            first = shared.open_failures[0] if shared.open_failures else "set-up deadline passed"
            missing = shared.expected - shared.opened
            return _Report({}, 0.0, 0.0, failure=f"{missing} clients failed to open: {first}")
        conn.send(_Report({}, 0.0, 0.0))
        started_at: float = await trio.to_thread.run_sync(conn.recv, abandon_on_cancel=True)
        await trio.sleep(max(0.0, started_at - time.time()))
        shared.start = time.perf_counter()
        shared.end = shared.start + plan.seconds
        shared.hard_deadline = trio.current_time() + plan.seconds + plan.drain
        cpu_before = time.process_time()
        shared.go.set()
    elapsed = time.perf_counter() - shared.start
    return _Report(results, elapsed, time.process_time() - cpu_before)


async def _client(shared: _Shared, group: Group, client_id: int, out: GroupResult) -> None:
    plan = shared.plan
    headers = {**plan.headers, **group.headers}
    try:
        async with _http_client(shared, headers) as http:
            env = ClientEnv(
                plan.base_url, headers, http, client_id, group.clients, shared.process, shared.ssl_context
            )
            async with group.op.open(env) as call:
                shared.opened += 1
                shared.settle()
                await shared.go.wait()
                with trio.move_on_at(shared.hard_deadline) as scope:
                    await _loop(shared, group, client_id, call, out)
                if scope.cancelled_caught:
                    out.unfinished += 1
    except Exception as exc:
        if not shared.go.is_set():
            shared.open_failures.append(f"{type(exc).__name__}: {exc}")
            shared.settle()
        else:  # closing a session after the run (e.g. a websocket the server already dropped)
            _error(out, f"teardown {type(exc).__name__}", str(exc))


@asynccontextmanager
async def _http_client(shared: _Shared, headers: Mapping[str, str]) -> AsyncIterator[HttpClient]:
    plan = shared.plan
    if plan.client == "raw":
        raw = RawHttpConnection(plan.base_url, headers)
        try:
            yield raw
        finally:
            await raw.aclose()
        return
    async with httpx.AsyncClient(
        base_url=plan.base_url,
        headers=dict(headers),
        limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
        timeout=None,  # calls are bounded by the loop's cancel scopes
        verify=shared.ssl_context,
    ) as client:
        yield _Httpx(client)


async def _loop(shared: _Shared, group: Group, client_id: int, call: Call, out: GroupResult) -> None:
    interval = group.clients / group.rate if group.rate else 0.0
    # Paced clients are spread over one interval so they do not fire in lock step.
    first = shared.start + interval * client_id / group.clients
    budget = share(group.max_ops, group.clients, client_id)
    for k in range(budget):
        if interval:
            began = first + k * interval  # latency counts from the intended start: no coordinated omission
            if began >= shared.end - 1e-9:
                return
            delay = began - time.perf_counter()
            if delay > 0:
                await trio.sleep(delay)
        else:
            began = time.perf_counter()
            if began >= shared.end:
                return
        seq = client_id + k * group.clients
        try:
            with trio.fail_after(shared.plan.call_deadline):
                done = await call(seq)
        except OpFailed as exc:
            _error(out, exc.reason, exc.detail)
            continue
        except Exception as exc:
            _error(out, type(exc).__name__, str(exc))
            continue
        out.starts.append(began - shared.start)
        out.latencies.append(time.perf_counter() - began)
        out.ops += 1
        out.items += done.items
        out.acks.extend(done.acks)


def _error(out: GroupResult, reason: str, detail: str) -> None:
    out.errors[reason] += 1
    out.error_samples.setdefault(reason, detail[:300])


def throughput(ops: int, elapsed: float) -> float:
    """Operations per second; NaN when nothing was measured."""
    return ops / elapsed if elapsed > 0 else math.nan
