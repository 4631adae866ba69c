"""First run on a fresh machine (`orch serve`, a real child process, no config): a persisted JWT secret,
one-time admin credentials printed once; and start-up refused with an unsafe secret outside dev mode."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from orch.server import READY_PREFIX

pytestmark = pytest.mark.integration

ENV = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
CREDENTIALS = re.compile(r"user: +(\S+)\n +password: +(\S+)\n")


class Served:
    """A running `orch serve` child: its URL and everything it wrote on stderr before being ready."""

    def __init__(self, process: trio.Process, url: str, early_stderr: str) -> None:
        self.process = process
        self.url = url
        self.early_stderr = early_stderr


async def _serve(data_dir: Path, env: dict[str, str]) -> Served:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "orch", "serve", "--port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    out = b""
    with trio.fail_after(20):
        while b"\n" not in out:
            chunk = await process.stdout.receive_some(4096)
            assert chunk, "orch serve exited before it was ready"
            out += chunk
    # Whatever the node printed before its ready line is in the pipe already.
    err = b""
    with trio.move_on_after(0.5):
        while chunk := await process.stderr.receive_some(65536):
            err += chunk
            if b"password:" in err and err.endswith(b"\n\n"):
                break
    url = out.split(b"\n", 1)[0].decode().removeprefix(READY_PREFIX)
    return Served(process, url, err.decode())


async def _stop(served: Served) -> int:
    served.process.send_signal(signal.SIGTERM)
    with trio.fail_after(15):
        return await served.process.wait()


async def _login(url: str, user: str, password: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as http:
        return await http.post("/auth/login", json={"username": user, "password": password})


async def test_first_run_prints_generated_admin_credentials_once_and_keeps_the_secret(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    first = await _serve(data_dir, ENV)
    try:
        found = CREDENTIALS.search(first.early_stderr)
        assert found is not None, first.early_stderr
        user, password = found.groups()
        assert user == "admin" and len(password) >= 20
        assert "orch users reset-password admin" in first.early_stderr
        login = await _login(first.url, user, password)
        assert login.status_code == 200
        token = login.json()["access_token"]
    finally:
        assert await _stop(first) == 0
    secret = data_dir / "secrets" / "jwt.key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700

    second = await _serve(data_dir, ENV)
    try:
        assert "password:" not in second.early_stderr
        async with httpx.AsyncClient(base_url=second.url) as http:
            # Same persisted secret: a token from the first run is still valid.
            users = await http.get("/users", headers={"Authorization": f"Bearer {token}"})
        assert users.status_code == 200
        assert (await _login(second.url, user, password)).status_code == 200
    finally:
        assert await _stop(second) == 0
    assert password not in (data_dir / "orch.db").read_bytes().decode("latin-1")


async def test_admin_from_env_is_created_without_printing_anything(tmp_path: Path) -> None:
    env = {**ENV, "ORCH_ADMIN_USER": "root-admin", "ORCH_ADMIN_PASSWORD": "env-admin-password-1"}
    served = await _serve(tmp_path / "d", env)
    try:
        assert "password:" not in served.early_stderr
        assert (await _login(served.url, "root-admin", "env-admin-password-1")).status_code == 200
    finally:
        await _stop(served)


@pytest.mark.parametrize("secret", ["short-secret", "changeme", "x" * 32])
def test_serve_refuses_an_unsafe_jwt_secret_outside_dev_mode(tmp_path: Path, secret: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orch", "serve", "--port", "0", "--data-dir", str(tmp_path / "d")],
        env={**ENV, "ORCH_JWT_SECRET": secret},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-2:]
    assert last[0] == "orch: error: invalid configuration:"
    assert last[1].startswith("  security.jwt_secret: ")
    assert "dev_mode" in last[1]
    assert secret not in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


async def test_dev_mode_runs_with_a_short_secret_and_says_so(tmp_path: Path) -> None:
    env = {**ENV, "ORCH_JWT_SECRET": "short-dev-secret", "ORCH_DEV_MODE": "true"}
    env |= {"ORCH_ADMIN_USER": "admin", "ORCH_ADMIN_PASSWORD": "dev-admin-password-1"}
    served = await _serve(tmp_path / "d", env)
    try:
        assert "shorter than 32 bytes" in served.early_stderr
        assert (await _login(served.url, "admin", "dev-admin-password-1")).status_code == 200
    finally:
        await _stop(served)
