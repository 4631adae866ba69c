"""`orch serve` as a user runs it: a real child process, its ready line, SIGTERM, and clear errors."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from orch.cli import main
from orch.server import READY_PREFIX

ENV = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`main()` configures process-wide logging; in-process calls must not leak it into other tests."""
    root, hypercorn = logging.getLogger(), logging.getLogger("hypercorn.error")
    saved = list(root.handlers), root.level, hypercorn.level
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    hypercorn.setLevel(saved[2])


async def read_until_ready(stdout: trio.abc.ReceiveStream) -> tuple[str, bytes]:
    buffer = b""
    with trio.fail_after(15):
        while b"\n" not in buffer:
            chunk = await stdout.receive_some(4096)
            assert chunk, "orch serve exited before it was ready"
            buffer += chunk
    line, _, rest = buffer.partition(b"\n")
    return line.decode(), rest


@pytest.mark.integration
async def test_serve_prints_one_ready_line_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "orch", "serve", "--port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A named first admin: no one-time credentials notice (tested in test_auth_first_run.py).
        env={**ENV, "ORCH_ADMIN_USER": "admin", "ORCH_ADMIN_PASSWORD": "cli-test-password-1"},
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        line, rest = await read_until_ready(process.stdout)
        assert line.startswith(READY_PREFIX + "http://127.0.0.1:")
        url = line.removeprefix(READY_PREFIX)
        async with httpx.AsyncClient(base_url=url) as http:
            health = await http.get("/health", headers={"X-Request-ID": "cli-test-1"})
        assert health.status_code == 200
        assert data_dir.is_dir()
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            code = await process.wait()
        rest += await _drain(process.stdout)
        errors = (await _drain(process.stderr)).decode()
    finally:
        if process.returncode is None:
            process.kill()
    assert code == 0
    assert rest == b"", "stdout must carry the ready line and nothing else"
    records = [json.loads(line) for line in errors.splitlines()]  # every stderr line is a JSON log record
    messages = [r["message"] for r in records]
    assert "GET /health 200" in messages
    assert any(r["correlation_id"] == "cli-test-1" for r in records)
    assert any(m.startswith("SIGTERM received") for m in messages)
    assert messages[-1] == "node stopped"


async def _drain(stream: trio.abc.ReceiveStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data


def test_config_error_exits_2_with_the_key_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "orch.yaml"
    config.write_text("server:\n  port: abc\n")
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err == "orch: error: invalid configuration:\n  server.port: must be 0..65535, got 'abc'\n"


def test_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_bad_arguments_exit_2_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--port", "http"])
    assert caught.value.code == 2
    assert "--port: must be 0..65535, got 'http'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2


@pytest.mark.integration
def test_port_in_use_exits_1_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--port", str(port), "--data-dir", str(tmp_path / "d")])
    assert code == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"orch: error: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in err
