"""`orch serve` as a child process, for tests that must kill or restart a real node."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import trio

from orch.server import READY_PREFIX


async def start_serve(data_dir: Path, env: Mapping[str, str]) -> tuple[trio.Process, str]:
    """Start `orch serve` on an ephemeral 127.0.0.1 port; (process, base URL) once its ready line is out."""
    argv = [sys.executable, "-m", "orch", "serve", "--port", "0", "--data-dir", str(data_dir)]
    process = await trio.lowlevel.open_process(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=dict(env)
    )
    assert process.stdout is not None
    buffer = b""
    with trio.fail_after(20):
        while b"\n" not in buffer:
            chunk = await process.stdout.receive_some(4096)
            assert chunk, "orch serve exited before it was ready"
            buffer += chunk
    line = buffer.partition(b"\n")[0].decode()
    assert line.startswith(READY_PREFIX), line
    return process, line.removeprefix(READY_PREFIX)


async def stop_serve(process: trio.Process) -> None:
    """SIGTERM (background processes may ignore SIGINT), then SIGKILL after 15 s."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(15):
            await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()
