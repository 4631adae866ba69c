"""Servers under test, each a subprocess on 127.0.0.1 with an ephemeral port: a fresh orch node on a
temporary data dir, and the hello-world baseline. Plus `ResourceMeter`, which samples a process's RSS
and CPU (psutil) while a measurement runs.

Servers are stopped with SIGTERM (DESIGN §7: background processes may ignore SIGINT), then SIGKILL after
a grace period. Their stdout/stderr go to files in the work dir, so a chatty server never blocks on a
full pipe, and a failed start shows the log's tail.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psutil

from bench.harness.safety import check_loopback

__all__ = [
    "BASELINE_READY",
    "NODE_READY",
    "Credentials",
    "ResourceMeter",
    "ResourceUsage",
    "ServerError",
    "ServerProcess",
    "baseline_server",
    "node_server",
    "start_server",
]

NODE_READY = "orch: ready on "  # orch.server.READY_PREFIX, repeated so the harness never imports the node
BASELINE_READY = "baseline: ready on "
MB = 1024 * 1024


class ServerError(RuntimeError):
    """A server did not start, or died."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Secrets handed to a fresh node through its environment (the first admin is created at start-up)."""

    admin_user: str
    admin_password: str = field(repr=False)
    jwt_secret: str = field(repr=False)
    webhook_secret: str = field(repr=False)

    @classmethod
    def generate(cls) -> Credentials:
        """Random secrets for one run."""
        return cls(
            admin_user="bench-admin",
            admin_password=secrets.token_urlsafe(24),
            jwt_secret=secrets.token_urlsafe(48),
            webhook_secret=secrets.token_urlsafe(32),
        )

    def env(self) -> dict[str, str]:
        """The node's environment variables for these credentials."""
        return {
            "ORCH_JWT_SECRET": self.jwt_secret,
            "ORCH_WEBHOOK_SECRET": self.webhook_secret,
            "ORCH_ADMIN_USER": self.admin_user,
            "ORCH_ADMIN_PASSWORD": self.admin_password,
        }


@dataclass(slots=True)
class ServerProcess:
    """A running server subprocess and where it listens."""

    name: str
    popen: subprocess.Popen[bytes]
    url: str
    workdir: Path
    stdout_path: Path
    stderr_path: Path
    ready_prefix: str

    def wait_ready(self, within: float = 60.0) -> None:
        """Wait for the line `<ready_prefix><url>` on stdout and take the URL from it; on failure the
        process is stopped and `ServerError` shows the log's tail."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for line in self.stdout_path.read_text(errors="replace").splitlines():
                if line.startswith(self.ready_prefix):
                    self.url = line[len(self.ready_prefix) :].strip()
                    check_loopback(self.url)
                    return
            if self.popen.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self.popen.returncode} before it was ready:\n{self.log_tail()}"
                )
            time.sleep(0.02)
        self.stop()
        raise ServerError(f"{self.name} was not ready within {within:.0f} s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen.poll() is None

    def stop(self, grace: float = 20.0) -> int:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL; the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10.0)
        return self.popen.returncode

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's stdout and stderr."""
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append("\n".join(text.splitlines()[-lines:]))
        return "\n".join(p for p in parts if p)


def start_server(
    name: str,
    argv: Sequence[str],
    ready_prefix: str,
    workdir: Path,
    env: Mapping[str, str],
    *,
    wait: bool = True,
) -> ServerProcess:
    """Start `argv`; unless `wait` is False, wait for its ready line (`ServerProcess.wait_ready`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        popen = subprocess.Popen(
            list(argv), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=dict(env), cwd=workdir
        )
    server = ServerProcess(name, popen, "", workdir, stdout_path, stderr_path, ready_prefix)
    if wait:
        server.wait_ready()
    return server


def _clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    # The caller's own ORCH_* settings must not leak into a benchmark node.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env.update(extra)
    return env


@contextmanager
def node_server(
    workdir: Path,
    credentials: Credentials,
    env: Mapping[str, str] | None = None,
    config_yaml: str | None = None,
    *,
    wait: bool = True,
) -> Iterator[ServerProcess]:
    """A fresh `orch serve` on `workdir/data` and a free 127.0.0.1 port; stopped (SIGTERM) on exit.

    `env` adds or overrides node settings, e.g. `{"ORCH_SERVER__ACCESS_LOG": "false"}`; `config_yaml`
    is written to `workdir/config.yaml` and passed with `--config`. With `wait=False` the caller calls
    `wait_ready()` (to start several servers at once).
    """
    data_dir = workdir / "data"
    argv = [sys.executable, "-m", "orch", "serve", "--host", "127.0.0.1", "--port", "0"]
    argv += ["--data-dir", str(data_dir)]
    if config_yaml is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config.yaml").write_text(config_yaml)
        argv += ["--config", str(workdir / "config.yaml")]
    server = start_server(
        "node",
        argv,
        NODE_READY,
        workdir,
        _clean_env({"PYTHONPATH": _repo_root(), **credentials.env(), **(env or {})}),
        wait=wait,
    )
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def baseline_server(workdir: Path, *, wait: bool = True) -> Iterator[ServerProcess]:
    """The hello-world Quart-Trio app on Hypercorn's trio worker, on a free 127.0.0.1 port."""
    argv = [sys.executable, "-m", "bench.harness.baseline_app", "--host", "127.0.0.1", "--port", "0"]
    env = _clean_env({"PYTHONPATH": _repo_root()})
    server = start_server("baseline", argv, BASELINE_READY, workdir, env, wait=wait)
    try:
        yield server
    finally:
        server.stop()


def _repo_root() -> str:
    return str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True, slots=True)
class ResourceUsage:
    """A process's resources over one measurement. CPU in percent of one core (200 = two cores busy);
    `box_cpu_pct` is the whole machine's, so `box - server - client` is everybody else's (noise)."""

    seconds: float
    cpu_pct: float
    rss_start_mb: float
    rss_peak_mb: float
    rss_end_mb: float
    fds_peak: int
    box_cpu_pct: float
    samples: tuple[
        tuple[float, float, float, float], ...
    ]  # (offset s, rss MB, cpu %, box cpu %) per interval
    started_at: float = 0.0  # wall clock of offset 0

    def within(self, start: float, end: float) -> tuple[float, float]:
        """Server and box CPU % over the wall-clock window [start, end], from the sampled intervals that
        overlap it (so process start-up and drain outside a load window do not dilute the figure)."""
        cpu = box = covered = 0.0
        previous = 0.0
        for offset, _, pct, box_pct in self.samples:
            lo, hi = max(previous, start - self.started_at), min(offset, end - self.started_at)
            if hi > lo:
                cpu += pct * (hi - lo)
                box += box_pct * (hi - lo)
                covered += hi - lo
            previous = offset
        if covered <= 0:
            return self.cpu_pct, self.box_cpu_pct
        return cpu / covered, box / covered


class ResourceMeter:
    """Samples one process's RSS, CPU and open files in a background thread while the block runs."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self._process = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_loop, name="resource-meter", daemon=True)
        self._samples: list[tuple[float, float, float, float]] = []
        self._fds_peak = 0
        self._t0 = 0.0
        self.usage: ResourceUsage | None = None

    def __enter__(self) -> ResourceMeter:
        self._wall0 = time.time()
        self._t0 = time.perf_counter()
        self._cpu0 = self._cpu()
        self._box0 = _box_busy()
        self._rss0 = self._process.memory_info().rss / MB
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        elapsed = time.perf_counter() - self._t0
        try:
            rss_end = self._process.memory_info().rss / MB
            cpu = self._cpu() - self._cpu0
        except psutil.NoSuchProcess:
            rss_end, cpu = float("nan"), float("nan")
        rss_values = [s[1] for s in self._samples] + [self._rss0, rss_end]
        self.usage = ResourceUsage(
            seconds=elapsed,
            cpu_pct=cpu / elapsed * 100.0 if elapsed > 0 else float("nan"),
            rss_start_mb=self._rss0,
            rss_peak_mb=max(v for v in rss_values if v == v),
            rss_end_mb=rss_end,
            fds_peak=self._fds_peak,
            box_cpu_pct=(_box_busy() - self._box0) / elapsed * 100.0 if elapsed > 0 else float("nan"),
            samples=tuple(self._samples),
            started_at=self._wall0,
        )

    def _cpu(self) -> float:
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def _sample_loop(self) -> None:
        last_t, last_cpu, last_box = self._t0, self._cpu0, self._box0
        while not self._stop.wait(self._interval):
            try:
                rss = self._process.memory_info().rss / MB
                cpu = self._cpu()
                self._fds_peak = max(self._fds_peak, self._process.num_fds())
            except psutil.NoSuchProcess:
                return
            box = _box_busy()
            now = time.perf_counter()
            span = now - last_t
            if span > 0:
                sample = (
                    now - self._t0,
                    rss,
                    (cpu - last_cpu) / span * 100.0,
                    (box - last_box) / span * 100.0,
                )
                self._samples.append(sample)
            last_t, last_cpu, last_box = now, cpu, box


def _box_busy() -> float:
    """Seconds of CPU the whole machine spent busy since boot (all cores)."""
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    return float(sum(times) - idle)
