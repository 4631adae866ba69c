"""Scenario plumbing: command-line options, a `Bench` session that owns the servers (a fresh node and
the baseline, on a temp dir), runs measurements, and prints/writes the result."""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx
import psutil

from bench.harness.load import Group, LoadPlan, LoadResult, run_load
from bench.harness.plots import write_plots
from bench.harness.report import (
    RESULTS_DIR,
    Check,
    Measurement,
    ScenarioResult,
    cpu_ms_per_op,
    format_table,
    machine_info,
    measurement_from,
    write_json,
)
from bench.harness.servers import (
    MB,
    Credentials,
    ResourceMeter,
    ServerProcess,
    baseline_server,
    node_server,
)
from bench.harness.wrk import run_wrk, wrk_path

__all__ = [
    "BASELINE",
    "NODE",
    "Bench",
    "Options",
    "Target",
    "add_common_args",
    "login",
    "options_from_args",
    "rss_mb",
]

NODE = "orch"
BASELINE = "baseline"

# The bench measures capacity, not the per-principal rate limits (security defaults: writes 600/min,
# streams 60/min per principal), which one benchmark principal would hit within seconds. Logins keep
# their limit. `--node-config FILE` replaces this.
BENCH_NODE_CONFIG = """\
security:
  rate_limits:
    - default=100000000/60
    - read=100000000/60
    - write=100000000/60
    - worker=100000000/60
    - stream=100000000/60
    - webhook=100000000/60
"""


@dataclass(frozen=True, slots=True)
class Options:
    """How a scenario runs. `quick` picks small defaults (< 1 minute in all); full mode runs 3 times."""

    quick: bool = True
    runs: int = 1
    seconds: float = 3.0
    warmup: float = 0.5
    clients: tuple[int, ...] = (50,)
    processes: int = 1
    client: Literal["raw", "httpx"] = "raw"
    minutes: float = 10.0
    baseline: bool = True
    wrk: bool = True
    plots: bool = True
    out_dir: Path = RESULTS_DIR
    node_env: Mapping[str, str] = field(default_factory=dict)
    node_config: Path | None = None
    keep: bool = False

    @property
    def mode(self) -> str:
        """quick or full."""
        return "quick" if self.quick else "full"


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """The flags every scenario understands."""
    parser.add_argument("--quick", action="store_true", help="smoke check: 1 short run (< 1 minute in all)")
    parser.add_argument("--runs", type=int, help="runs per measurement (default: 1 quick, 3 full; median)")
    parser.add_argument("--seconds", type=float, help="seconds per measured run (default: 3 quick, 10 full)")
    parser.add_argument("--warmup", type=float, help="unrecorded warm-up seconds per target (0.5 / 2)")
    parser.add_argument("--clients", help="comma-separated concurrency levels (scenario default)")
    parser.add_argument("--processes", type=int, help="load generator processes (default 1)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="load generator's HTTP client (raw: lean keep-alive; httpx)")  # fmt: skip
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length (soak scenario)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the hello-world baseline")
    parser.add_argument("--no-wrk", action="store_true", help="skip wrk even when it is installed")
    parser.add_argument("--no-plots", action="store_true", help="skip PNG plots")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory (bench/results)")
    parser.add_argument("--node-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra node environment, e.g. ORCH_SERVER__ACCESS_LOG=false")  # fmt: skip
    parser.add_argument("--node-config", type=Path, metavar="FILE",
                        help="YAML config file for the node (orch serve --config)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (node data and logs)")


def options_from_args(
    args: argparse.Namespace, default_clients: Sequence[int] = (50,), quick_clients: Sequence[int] = (50,)
) -> Options:
    """Options from parsed flags; the scenario supplies its concurrency levels for full and quick mode."""
    quick = bool(args.quick)
    if args.clients:
        clients = tuple(int(c) for c in args.clients.split(","))
    else:
        clients = tuple(quick_clients if quick else default_clients)
    env = dict(item.split("=", 1) for item in args.node_env)
    return Options(
        quick=quick,
        runs=args.runs or (1 if quick else 3),
        seconds=args.seconds or (3.0 if quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (0.5 if quick else 2.0),
        clients=clients,
        processes=args.processes or 1,
        client=args.client,
        minutes=args.minutes,
        baseline=not args.no_baseline,
        wrk=not args.no_wrk and wrk_path() is not None,
        plots=not args.no_plots,
        out_dir=args.out,
        node_env=env,
        node_config=args.node_config,
        keep=args.keep,
    )


@dataclass(frozen=True, slots=True)
class Target:
    """A server to measure and the target its numbers are compared with."""

    name: str
    server: ServerProcess
    reference: str | None


class Bench:
    """One scenario session: a fresh node (and the baseline) in a temp dir, measurements, the result.

    with Bench("health", options) as bench:
        for run in range(options.runs):
            for target in bench.targets(run):
                bench.measure(target, [Group("GET /health", HttpOp(), 50)], run=run)
    # on exit: servers stopped, table printed, JSON (and plots) written
    """

    def __init__(
        self, scenario: str, options: Options, *, node: bool = True, node_config: str | None = None
    ) -> None:
        self.options = options
        self.result = ScenarioResult(
            scenario, options.mode, _jsonable_options(options), machine_info(["wrk"])
        )
        self.credentials = Credentials.generate()
        self._want_node = node
        if node_config is None:
            node_config = options.node_config.read_text() if options.node_config else BENCH_NODE_CONFIG
        self._node_config = node_config
        self._stack = ExitStack()
        self._token: str | None = None
        self._routes: set[tuple[str, str]] | None = None
        self._system_tokens: dict[str, str] = {}
        self.workdir = Path()
        self.node: ServerProcess | None = None
        self.baseline: ServerProcess | None = None
        self.json_path: Path | None = None
        self.idle_rss_mb = math.nan

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> Bench:
        try:
            tmp = tempfile.mkdtemp(prefix=f"orch-bench-{self.result.scenario}-")
            self.workdir = Path(tmp)
            if not self.options.keep:
                self._stack.callback(_rmtree, self.workdir)
            if self._want_node:
                self.node = self._stack.enter_context(
                    node_server(
                        self.workdir / "node",
                        self.credentials,
                        self.options.node_env,
                        self._node_config,
                        wait=False,
                    )
                )
            if self.options.baseline:
                self.baseline = self._stack.enter_context(
                    baseline_server(self.workdir / "baseline", wait=False)
                )
            # Both start at once (imports take seconds); then wait for each ready line.
            for server in (self.node, self.baseline):
                if server is not None:
                    server.wait_ready()
            if self.node is not None:
                self._record_idle_rss(self.node)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.stop_servers()
        finally:
            if kind is None or kind is KeyboardInterrupt:
                self.publish()

    def stop_node(self) -> None:
        """Stop the node (SIGTERM) now, e.g. to check its store; records whether it exited cleanly."""
        if self.node is not None and self.node.alive():
            status = self.node.stop()
            check = Check("node exits cleanly on SIGTERM", status == 0, f"exit status {status}")
            self.result.checks.append(check)

    def stop_servers(self) -> None:
        """Stop the servers (SIGTERM) and remove the temp dir; safe to call twice."""
        self.stop_node()
        self._stack.close()

    def publish(self) -> None:
        """Compute medians; print the table; write the JSON and plots."""
        self.result.finish()
        print(format_table(self.result), flush=True)
        self.json_path = write_json(self.result, self.options.out_dir)
        print(f"results: {self.json_path}")
        if self.options.plots:
            for path in write_plots(self.result, self.options.out_dir, self.json_path.stem):
                print(f"plot:    {path}")

    def _record_idle_rss(self, server: ServerProcess) -> None:
        time.sleep(1.0)  # let start-up settle (imports, first GC) before calling it idle
        rss = psutil.Process(server.pid).memory_info().rss / MB
        self.result.notes.append(f"node idle RSS after start: {rss:.1f} MB")
        self.idle_rss_mb = rss

    # -- targets and measurements ----------------------------------------------------------------------
    def targets(self, run: int = 0) -> Iterator[Target]:
        """The node then the baseline, alternating which goes first on each run (drift hits both)."""
        pair: list[Target] = []
        if self.node is not None:
            pair.append(Target(NODE, self.node, BASELINE if self.baseline else None))
        if self.baseline is not None:
            pair.append(Target(BASELINE, self.baseline, None))
        yield from (pair if run % 2 == 0 else reversed(pair))

    def measure(
        self,
        target: Target,
        groups: Sequence[Group],
        *,
        run: int,
        headers: Mapping[str, str] | None = None,
        seconds: float | None = None,
        record: bool = True,
    ) -> tuple[LoadResult, list[Measurement]]:
        """Warm up (unrecorded), then one measured load run; the measurements are added to the result."""
        opts = self.options
        plan = LoadPlan(
            base_url=target.server.url,
            groups=tuple(groups),
            seconds=seconds or opts.seconds,
            processes=opts.processes,
            headers=dict(headers or {}),
            client=opts.client,
        )
        if opts.warmup > 0 and record:
            run_load(replace(plan, seconds=opts.warmup))
        with ResourceMeter(target.server.pid) as meter:
            load = run_load(plan)
        measurements = [
            measurement_from(
                target.name, run, load.groups[g.name], load, meter.usage, reference=target.reference
            )
            for g in groups
        ]
        if record:
            self.result.runs.extend(measurements)
        for m in measurements:
            print(
                f"  {target.name:9} {m.group:24} c={m.clients:<4} run {run}: {m.rps:8,.0f} ops/s  "
                f"p99 {m.latency.p99_ms:7.1f} ms  errors {m.errors}  srv CPU {m.server_cpu_pct:3.0f}%  "
                f"cli CPU {m.client_cpu_pct:3.0f}%",
                file=sys.stderr,
                flush=True,
            )
        return load, measurements

    def wrk(self, target: Target, path: str, connections: int, *, run: int) -> Measurement:
        """One wrk run (GET `path`), recorded as target `<name>/wrk`."""
        reference = f"{target.reference}/wrk" if target.reference else None
        with ResourceMeter(target.server.pid) as meter:
            out = run_wrk(target.server.url + path, connections, self.options.seconds)
        usage = meter.usage
        assert usage is not None
        m = Measurement(
            target=f"{target.name}/wrk",
            group=f"GET {path}",
            clients=connections,
            run=run,
            ops=out.requests,
            items=out.requests,
            errors=out.errors,
            elapsed=out.seconds,
            rps=out.rps,
            items_ps=out.rps,
            latency=out.latency,
            server_cpu_pct=usage.cpu_pct,
            server_rss_start_mb=usage.rss_start_mb,
            server_rss_peak_mb=usage.rss_peak_mb,
            server_rss_end_mb=usage.rss_end_mb,
            server_fds_peak=usage.fds_peak,
            client_cpu_pct=out.cpu_seconds / out.seconds * 100.0 if out.seconds > 0 else math.nan,
            box_cpu_pct=usage.box_cpu_pct,
            reference=reference,
            server_cpu_ms_per_op=cpu_ms_per_op(usage.cpu_pct, out.rps),
            server_samples=list(usage.samples),
        )
        self.result.runs.append(m)
        p99 = m.latency.p99_ms
        print(
            f"  {m.target:13} c={connections:<4} run {run}: {m.rps:8,.0f} req/s  p99 {p99:7.1f} ms",
            file=sys.stderr,
        )
        return m

    # -- the node's surface and store -----------------------------------------------------------------
    def has_route(self, path: str, method: str = "get") -> bool:
        """True when the node's OpenAPI document lists `method path` (routes land over time)."""
        if self.node is None:
            return False
        if self._routes is None:
            doc = httpx.get(f"{self.node.url}/openapi.json", timeout=30.0).json()
            self._routes = {(m.lower(), p) for p, ops in doc.get("paths", {}).items() for m in ops}
        return (method.lower(), path) in self._routes

    def skip(self, what: str) -> None:
        """Record that part of the scenario did not run (its endpoint has not landed yet)."""
        self.result.notes.append(f"skipped: {what}")
        print(f"  skipped: {what}", file=sys.stderr)

    @property
    def db_path(self) -> Path:
        """The node's SQLite file (read it with `verify.stored_values`)."""
        return self.workdir / "node" / "data" / "orch.db"

    # -- auth ------------------------------------------------------------------------------------------
    def token(self) -> str:
        """An admin access token from the node (`POST /auth/login`), fetched once."""
        if self._token is None:
            assert self.node is not None, "this scenario runs no node"
            self._token = login(self.node.url, self.credentials.admin_user, self.credentials.admin_password)
        return self._token

    def auth_headers(self) -> dict[str, str]:
        """`Authorization: Bearer <admin token>`."""
        return {"Authorization": f"Bearer {self.token()}"}

    def system_headers(self, name: str = "bench-worker") -> dict[str, str]:
        """`Authorization` with a system token (workers, integrations), issued once per name."""
        if name not in self._system_tokens:
            assert self.node is not None, "this scenario runs no node"
            url = f"{self.node.url}/tokens"
            response = httpx.post(url, json={"name": name}, headers=self.auth_headers(), timeout=30.0)
            if response.status_code != 201:
                raise RuntimeError(f"system token: HTTP {response.status_code}: {response.text[:300]}")
            self._system_tokens[name] = response.json()["token"]
        return {"Authorization": f"Bearer {self._system_tokens[name]}"}


def rss_mb(server: ServerProcess) -> float:
    """The server's resident memory now."""
    return float(psutil.Process(server.pid).memory_info().rss) / MB


def login(url: str, user: str, password: str) -> str:
    """POST /auth/login; the access token (bcrypt makes this ~0.25 s: do it once, not per client)."""
    response = httpx.post(f"{url}/auth/login", json={"username": user, "password": password}, timeout=30.0)
    if response.status_code != 200:
        raise RuntimeError(f"login failed: HTTP {response.status_code}: {response.text[:300]}")
    body: dict[str, Any] = response.json()
    token = body.get("access_token") or body.get("token")
    if not isinstance(token, str):
        raise RuntimeError(f"login answer has no access_token: {sorted(body)}")
    return token


def _jsonable_options(options: Options) -> dict[str, Any]:
    doc = asdict(options)
    doc["out_dir"] = str(options.out_dir)
    doc["node_env"] = sorted(options.node_env)  # names only: values may be secrets
    doc["node_config"] = str(options.node_config) if options.node_config else None
    return doc


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
