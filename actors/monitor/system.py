"""System and process metrics through psutil. Blocking: run `SystemSampler.sample` in a worker thread."""

from __future__ import annotations

import os
from collections.abc import Sequence

import psutil

from .series import series_key


class SystemSampler:
    """Samples CPU, memory, load, disks, network counters and this process's RSS, fds, threads and CPU.

    CPU percentages are measured between consecutive calls (psutil's non-blocking mode), so the sampler is
    primed on construction. Network and process CPU time are exported as ``*_total`` counters; the monitor
    derives per-second rates from them.
    """

    def __init__(self, disk_paths: Sequence[str] = ("/",)) -> None:
        self._disk_paths = tuple(disk_paths)
        self._process = psutil.Process(os.getpid())
        psutil.cpu_percent(interval=None)
        self._process.cpu_percent(interval=None)

    def sample(self) -> dict[str, float]:
        """One round of system and process metrics (blocking; call from a thread)."""
        out: dict[str, float] = {}
        out["system_cpu_percent"] = psutil.cpu_percent(interval=None)
        memory = psutil.virtual_memory()
        out["system_memory_percent"] = memory.percent
        out["system_memory_available_bytes"] = float(memory.available)
        out["system_load1"] = os.getloadavg()[0]
        for path in self._disk_paths:
            try:
                usage = psutil.disk_usage(path)
            except OSError:
                continue  # a path that vanished (unmounted) simply has no sample this round
            out[series_key("disk_used_percent", {"path": path})] = usage.percent
            out[series_key("disk_free_bytes", {"path": path})] = float(usage.free)
        net = psutil.net_io_counters()
        if net is not None:
            out["net_sent_bytes_total"] = float(net.bytes_sent)
            out["net_recv_bytes_total"] = float(net.bytes_recv)
        self._process_sample(out)
        return out

    def _process_sample(self, out: dict[str, float]) -> None:
        proc = self._process
        with proc.oneshot():
            out["process_rss_bytes"] = float(proc.memory_info().rss)
            out["process_open_fds"] = float(proc.num_fds())
            out["process_threads"] = float(proc.num_threads())
            out["process_cpu_percent"] = proc.cpu_percent(interval=None)
            times = proc.cpu_times()
            out["process_cpu_seconds_total"] = times.user + times.system
