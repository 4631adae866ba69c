"""Optional PNG plots (matplotlib, the `bench` extra): latency over time, throughput vs concurrency and
server RSS over time. Without matplotlib, `write_plots` returns nothing and says why once."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness.report import Measurement, ScenarioResult

__all__ = ["write_plots"]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plots skipped: matplotlib is not installed (pip install -e '.[bench]')", file=sys.stderr)
        return None
    return plt


def write_plots(result: ScenarioResult, out_dir: Path, stem: str) -> list[Path]:
    """Write the plots that `result` has data for next to its JSON; their paths."""
    plt = _pyplot()
    if plt is None:
        return []
    written: list[Path] = []
    runs = [m for m in result.runs if m.run == 0 and m.timeline]
    if runs:
        written.append(_latency_over_time(plt, runs, out_dir / f"{stem}-latency.png", result.scenario))
    if len({m.clients for m in result.summary}) > 1:
        written.append(_throughput_vs_clients(plt, result.summary, out_dir / f"{stem}-throughput.png"))
    long_runs = [
        m for m in result.runs if m.run == 0 and len(m.server_samples) >= 20 and "/wrk" not in m.target
    ]
    if long_runs:
        written.append(_rss_over_time(plt, long_runs, out_dir / f"{stem}-rss.png", result.scenario))
    return written


def _latency_over_time(plt: Any, runs: Sequence[Measurement], path: Path, title: str) -> Path:
    top = max(m.clients for m in runs)
    chosen = [m for m in runs if m.clients == top]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for m in chosen:
        xs = [b.start for b in m.timeline]
        ax.plot(xs, [b.p50_ms for b in m.timeline], label=f"{m.target} {m.group} p50")
        ax.plot(xs, [b.p99_ms for b in m.timeline], linestyle="--", label=f"{m.target} {m.group} p99")
    ax.set(
        xlabel="seconds since start",
        ylabel="latency (ms)",
        title=f"{title}: latency over time, {top} clients",
    )
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _throughput_vs_clients(plt: Any, rows: Sequence[Measurement], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    series: dict[tuple[str, str], list[Measurement]] = {}
    for m in rows:
        series.setdefault((m.target, m.group), []).append(m)
    for (target, group), ms in sorted(series.items()):
        ms.sort(key=lambda m: m.clients)
        ax.plot([m.clients for m in ms], [m.rps for m in ms], marker="o", label=f"{target} {group}")
    ax.set(xlabel="concurrent clients", ylabel="operations / s (median)", title="throughput vs concurrency")
    ax.set_xscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _rss_over_time(plt: Any, runs: Sequence[Measurement], path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4.5))
    seen: set[str] = set()
    for m in runs:
        if m.target in seen:
            continue
        seen.add(m.target)
        ax.plot([s[0] for s in m.server_samples], [s[1] for s in m.server_samples], label=f"{m.target} RSS")
    ax.set(xlabel="seconds since start", ylabel="server RSS (MB)", title=f"{title}: server memory")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
