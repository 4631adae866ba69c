"""The result model: measurements, medians over runs, ratios to the same-run baseline, correctness checks
and targets; printed as a table and written as JSON under bench/results/."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from bench.harness.load import GroupResult, LoadResult
from bench.harness.servers import ResourceUsage
from bench.harness.stats import Bucket, LatencySummary, median, summarize_latencies, timeline

__all__ = [
    "RESULTS_DIR",
    "Check",
    "Measurement",
    "ScenarioResult",
    "TargetCheck",
    "cpu_ms_per_op",
    "format_table",
    "machine_info",
    "measurement_from",
    "summarize",
    "write_json",
]

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
PACKAGES = (
    "trio", "quart", "quart-trio", "hypercorn", "h11", "httptools", "wsproto", "httpx", "httpcore",
    "trio-websocket", "psutil", "prometheus-client", "pyjwt", "bcrypt",
)  # fmt: skip


@dataclass(slots=True)
class Measurement:
    """One target x group x concurrency, for one run (`run` >= 0) or the median of runs (`run` == -1).

    `reference` names the target this one is compared with: `ratio` is rps / reference rps, and
    `cost_ratio` is server CPU per operation / the reference's. CPU per operation does not depend on how
    much CPU the server got, so on a busy machine `cost_ratio` is the steadier comparison.
    Rates are per second of wall time from the common start to the last finished client.
    """

    target: str
    group: str
    clients: int
    run: int
    ops: int
    items: int
    errors: int
    elapsed: float
    rps: float
    items_ps: float
    latency: LatencySummary
    server_cpu_pct: float = math.nan
    server_rss_start_mb: float = math.nan
    server_rss_peak_mb: float = math.nan
    server_rss_end_mb: float = math.nan
    server_fds_peak: int = 0
    client_cpu_pct: float = math.nan
    box_cpu_pct: float = math.nan
    unfinished: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    error_samples: dict[str, str] = field(default_factory=dict)
    reference: str | None = None
    ratio: float = math.nan
    server_cpu_ms_per_op: float = math.nan
    cost_ratio: float = math.nan
    runs: int = 1
    extra: dict[str, float] = field(default_factory=dict)
    timeline: list[Bucket] = field(default_factory=list)
    server_samples: list[tuple[float, float, float, float]] = field(default_factory=list)

    @property
    def other_cpu_pct(self) -> float:
        """CPU that neither the server nor the load generator used: other processes (noise)."""
        return max(0.0, self.box_cpu_pct - self.server_cpu_pct - self.client_cpu_pct)

    @property
    def key(self) -> tuple[str, str, int]:
        """What runs of the same measurement share."""
        return (self.target, self.group, self.clients)


def measurement_from(
    target: str,
    run: int,
    group: GroupResult,
    load: LoadResult,
    usage: ResourceUsage | None,
    *,
    reference: str | None = None,
    bucket: float = 1.0,
) -> Measurement:
    """A run's measurement from the load generator's samples and the server's resource usage (CPU
    counted over the load window only)."""
    elapsed = load.elapsed
    errors = sum(group.errors.values())
    rps = group.ops / elapsed if elapsed > 0 else math.nan
    cpu, box = usage.within(load.started_at, load.started_at + elapsed) if usage else (math.nan, math.nan)
    return Measurement(
        target=target,
        group=group.name,
        clients=group.clients,
        run=run,
        ops=group.ops,
        items=group.items,
        errors=errors + group.unfinished,
        elapsed=elapsed,
        rps=rps,
        items_ps=group.items / elapsed if elapsed > 0 else math.nan,
        latency=summarize_latencies(group.latencies),
        server_cpu_pct=cpu,
        server_rss_start_mb=usage.rss_start_mb if usage else math.nan,
        server_rss_peak_mb=usage.rss_peak_mb if usage else math.nan,
        server_rss_end_mb=usage.rss_end_mb if usage else math.nan,
        server_fds_peak=usage.fds_peak if usage else 0,
        client_cpu_pct=load.client_cpu_seconds / elapsed * 100.0 if elapsed > 0 else math.nan,
        box_cpu_pct=box,
        unfinished=group.unfinished,
        error_kinds=dict(group.errors),
        error_samples=dict(group.error_samples),
        reference=reference,
        # With several groups the server's CPU is shared: per-group CPU per operation would mislead.
        server_cpu_ms_per_op=cpu_ms_per_op(cpu, rps) if len(load.groups) == 1 else math.nan,
        timeline=timeline(group.starts, group.latencies, bucket),
        server_samples=list(usage.samples) if usage else [],
    )


_MEDIAN_FIELDS = (
    "elapsed", "rps", "items_ps", "server_cpu_pct", "server_rss_start_mb", "server_rss_peak_mb",
    "server_rss_end_mb", "client_cpu_pct", "box_cpu_pct", "server_cpu_ms_per_op",
)  # fmt: skip


def cpu_ms_per_op(cpu_pct: float, rps: float) -> float:
    """Server CPU milliseconds per operation, from its CPU % (of one core) and the operation rate."""
    return cpu_pct * 10.0 / rps if rps > 0 else math.nan


def summarize(runs: Sequence[Measurement]) -> list[Measurement]:
    """Median of each number over the runs of each (target, group, clients); errors are summed, and
    each row gets its ratio to its reference's median."""
    by_key: dict[tuple[str, str, int], list[Measurement]] = {}
    for m in runs:
        by_key.setdefault(m.key, []).append(m)
    rows = [_median_of(ms) for ms in by_key.values()]
    index = {row.key: row for row in rows}
    for row in rows:
        ref = index.get((row.reference, row.group, row.clients)) if row.reference else None
        if ref is not None and ref.rps > 0:
            row.ratio = row.rps / ref.rps
        if ref is not None and ref.server_cpu_ms_per_op > 0:
            row.cost_ratio = row.server_cpu_ms_per_op / ref.server_cpu_ms_per_op
    return rows


def _median_of(ms: Sequence[Measurement]) -> Measurement:
    first = ms[0]
    lat = [m.latency for m in ms]
    numbers: dict[str, Any] = {name: median([getattr(m, name) for m in ms]) for name in _MEDIAN_FIELDS}
    kinds: dict[str, int] = {}
    samples: dict[str, str] = {}
    for m in ms:
        for kind, count in m.error_kinds.items():
            kinds[kind] = kinds.get(kind, 0) + count
        for kind, text in m.error_samples.items():
            samples.setdefault(kind, text)
    extra_keys = {k for m in ms for k in m.extra}
    return replace(
        first,
        run=-1,
        runs=len(ms),
        ops=int(median([m.ops for m in ms])),
        items=int(median([m.items for m in ms])),
        errors=sum(m.errors for m in ms),
        unfinished=sum(m.unfinished for m in ms),
        latency=LatencySummary(
            count=int(median([x.count for x in lat])),
            mean_ms=median([x.mean_ms for x in lat]),
            p50_ms=median([x.p50_ms for x in lat]),
            p95_ms=median([x.p95_ms for x in lat]),
            p99_ms=median([x.p99_ms for x in lat]),
            max_ms=max((x.max_ms for x in lat), default=math.nan),
        ),
        server_fds_peak=max(m.server_fds_peak for m in ms),
        error_kinds=kinds,
        error_samples=samples,
        extra={k: median([m.extra.get(k, math.nan) for m in ms]) for k in sorted(extra_keys)},
        timeline=[],
        server_samples=[],
        **numbers,
    )


@dataclass(frozen=True, slots=True)
class Check:
    """A correctness check (every acknowledged task stored, every event delivered in order, ...)."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """A number against the issue's target, e.g. `dispatch rps >= 1200`."""

    name: str
    measured: float
    op: str
    threshold: float
    unit: str = ""

    @property
    def met(self) -> bool:
        """Whether the measured value meets the target."""
        if math.isnan(self.measured):
            return False
        return self.measured >= self.threshold if self.op == ">=" else self.measured < self.threshold


@dataclass(slots=True)
class ScenarioResult:
    """Everything one scenario command measured and checked."""

    scenario: str
    mode: str
    options: dict[str, Any]
    machine: dict[str, Any]
    runs: list[Measurement] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    targets: list[TargetCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    summary: list[Measurement] = field(default_factory=list)

    def finish(self) -> None:
        """Compute the medians and ratios."""
        self.summary = summarize(self.runs)

    def row(self, target: str, group: str, clients: int | None = None) -> Measurement | None:
        """The summary row of `target`/`group` (the highest concurrency when `clients` is None)."""
        rows = [m for m in self.summary if m.target == target and m.group == group]
        if clients is not None:
            rows = [m for m in rows if m.clients == clients]
        return max(rows, key=lambda m: m.clients, default=None)

    @property
    def ok(self) -> bool:
        """True when every correctness check passed (targets are reported, not enforced)."""
        return all(c.ok for c in self.checks)


def _num(value: float, digits: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def format_table(result: ScenarioResult) -> str:
    """The summary as an aligned text table, then checks, targets and notes."""
    head = ("target", "group", "clients", "runs", "ops/s", "items/s", "p50 ms", "p95 ms", "p99 ms", "errors",
            "srv CPU%", "srv ms/op", "srv RSS MB", "cli CPU%", "other CPU%", "ratio", "cost x")  # fmt: skip
    rows = [head]
    for m in sorted(result.summary, key=lambda m: (m.group, m.clients, m.target)):
        rows.append(
            (
                m.target,
                m.group,
                str(m.clients),
                str(m.runs),
                _num(m.rps),
                _num(m.items_ps),
                _num(m.latency.p50_ms, 1),
                _num(m.latency.p95_ms, 1),
                _num(m.latency.p99_ms, 1),
                str(m.errors),
                _num(m.server_cpu_pct),
                _num(m.server_cpu_ms_per_op, 3),
                _num(m.server_rss_peak_mb, 1),
                _num(m.client_cpu_pct),
                _num(m.other_cpu_pct),
                _num(m.ratio, 2),
                _num(m.cost_ratio, 2),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [f"== {result.scenario} ({result.mode}) =="]
    for r in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    for m in result.summary:
        for kind, count in sorted(m.error_kinds.items()):
            lines.append(
                f"  ! {m.target}/{m.group}/{m.clients}: {count} x {kind}: {m.error_samples.get(kind, '')}"
            )
        for name, value in m.extra.items():
            lines.append(f"  {m.target}/{m.group}/{m.clients}: {name} = {_num(value, 2)}")
    lines += [f"check  {'PASS' if c.ok else 'FAIL'}  {c.name}  {c.detail}".rstrip() for c in result.checks]
    for t in result.targets:
        verdict = "met" if t.met else "NOT met"
        want = f"want {t.op} {t.threshold:,g}{t.unit}"
        lines.append(f"target {verdict:7}  {t.name}: {_num(t.measured, 2)}{t.unit} ({want})")
    lines += [f"note   {n}" for n in result.notes]
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def to_json(result: ScenarioResult) -> dict[str, Any]:
    """The JSON document (NaN becomes null)."""
    doc = asdict(result)
    doc["ok"] = result.ok
    doc["targets"] = [{**asdict(t), "met": t.met} for t in result.targets]
    return dict(_jsonable(doc))


def write_json(result: ScenarioResult, out_dir: Path = RESULTS_DIR) -> Path:
    """Write `<scenario>-<mode>-<timestamp>.json` under `out_dir`; its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(result.started_at))
    path = out_dir / f"{result.scenario}-{result.mode}-{stamp}.json"
    path.write_text(json.dumps(to_json(result), indent=1) + "\n")
    return path


def machine_info(extra_tools: Iterable[str] = ()) -> dict[str, Any]:
    """nproc, CPU model, RAM, OS, Python, package versions, git commit, load average."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "packages": versions,
        "tools": {tool: _run(tool, "--version") for tool in extra_tools},
        "git_commit": _run("git", "rev-parse", "--short", "HEAD"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "open_files_limit": _nofile(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _nofile() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _run(*argv: str) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else None
