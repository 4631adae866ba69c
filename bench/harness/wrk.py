"""Optional: drive a GET endpoint with `wrk` (C, much cheaper per request than a Python client) when it
is installed, as a cross-check that the Python load generator was not the bottleneck."""

from __future__ import annotations

import math
import re
import resource
import shutil
import subprocess
from dataclasses import dataclass

from bench.harness.safety import check_loopback
from bench.harness.stats import LatencySummary

__all__ = ["WrkResult", "parse_wrk", "run_wrk", "wrk_path"]

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk_path() -> str | None:
    """The wrk binary, or None when it is not installed."""
    return shutil.which("wrk")


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What wrk reported, plus its own CPU time."""

    requests: int
    seconds: float
    rps: float
    errors: int
    latency: LatencySummary
    cpu_seconds: float


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        return math.nan
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str, cpu_seconds: float = math.nan) -> WrkResult:
    """Parse `wrk --latency` output."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if done is None:
        raise ValueError(f"unrecognised wrk output:\n{output}")
    requests = int(done.group(1))
    seconds = _ms(done.group(2) + done.group(3)) / 1000.0
    errors = 0
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket:
        errors += sum(int(g) for g in socket.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    dist = {int(p): _ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", output, re.MULTILINE)}
    avg = re.search(r"Latency\s+(\S+)\s+\S+\s+(\S+)", output)
    return WrkResult(
        requests=requests,
        seconds=seconds,
        rps=requests / seconds if seconds > 0 else math.nan,
        errors=errors,
        latency=LatencySummary(
            count=requests,
            mean_ms=_ms(avg.group(1)) if avg else math.nan,
            p50_ms=dist.get(50, math.nan),
            p95_ms=math.nan,  # wrk prints 50/75/90/99 only
            p99_ms=dist.get(99, math.nan),
            max_ms=_ms(avg.group(2)) if avg else math.nan,
        ),
        cpu_seconds=cpu_seconds,
    )


def run_wrk(url: str, connections: int, seconds: float, threads: int = 1) -> WrkResult:
    """Run wrk against `url` (loopback only) for `seconds`; bounded by wrk's own duration."""
    binary = wrk_path()
    if binary is None:
        raise FileNotFoundError("wrk is not installed")
    check_loopback(url)
    argv = [binary, f"-t{threads}", f"-c{max(connections, threads)}", f"-d{max(1, round(seconds))}s",
            "--timeout", "10s", "--latency", url]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout, cpu)
