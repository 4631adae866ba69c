"""`orch worker` for real: a node, a Python command run per task, heartbeats, cancellation of the whole
process group, lost leases, SIGTERM, and reconnecting to a node that comes back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio

from orch.datadir_lock import db_in_use
from orch.server import RunningNode
from orch.worker import Worker, WorkerRefused, WorkerSettings

from .auth_helpers import token_for
from .helpers import StartNode
from .task_helpers import dispatch, role_client, wait_status

pytestmark = pytest.mark.integration

ENV = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}


def settings(node: RunningNode, token: str, core: str, script: str, **overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "url": node.url,
        "core": core,
        "command": (sys.executable, "-c", textwrap.dedent(script)),
        "token": token,
        "worker_id": "test-worker-1",
        "heartbeat": 0.2,
        "claim_wait": 1.0,
        "max_tasks": 1,
        "echo": False,
        "kill_grace": 2.0,
        "backoff_min": 0.05,
        "backoff_max": 0.2,
        **overrides,
    }
    return WorkerSettings(**values)


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _complete(path: Path) -> str | None:
    text = path.read_text() if path.exists() else ""
    return text.strip(" .\n") if text.endswith(".") else None


async def read_pids(path: Path) -> list[int]:
    """The pids a command wrote (space-separated, ending with a dot once complete)."""
    with trio.fail_after(10):
        while (text := _complete(path)) is None:  # noqa: ASYNC110 - another process writes it
            await trio.sleep(0.02)
    return [int(p) for p in text.split()]


async def test_worker_runs_the_command_with_the_task_in_env_and_stdin_and_reports_success(
    node: RunningNode,
) -> None:
    script = """
        import json, os, sys
        task = json.load(sys.stdin)
        print("hello", task["task_id"], os.environ["ORCH_TASK_ID"], os.environ["ORCH_META_GREETING"])
        env = os.environ
        print("attempt", env["ORCH_ATTEMPT"], env["ORCH_META_COUNT_2"], env["ORCH_CORE_ID"])
        print("a warning", file=sys.stderr)
    """
    worker = Worker(settings(node, await token_for(node, "system"), "E2E", script))
    async with role_client(node, "operator") as ops:
        task = await dispatch(ops, "E2E", metadata={"greeting": "hi there", "count-2": 7})
        with trio.fail_after(20):
            await worker.run()
        final = (await ops.get(f"/tasks/{task['task_id']}")).json()
    assert final["status"] == "succeeded", final
    result = final["result"]
    assert result["exit_code"] == 0 and result["duration_s"] >= 0
    tid = task["task_id"]
    assert result["stdout"] == f"hello {tid} {tid} hi there\nattempt 1 7 E2E\n"
    assert result["stderr"] == "a warning\n"
    assert final["claimed_by"] == "test-worker-1"
    assert worker.completed == {"succeeded": 1}


async def test_a_failing_command_reports_its_exit_code_and_stderr_tail(node: RunningNode) -> None:
    script = """
        import sys
        print("x" * 5000, file=sys.stderr)
        print("the real reason", file=sys.stderr)
        sys.exit(3)
    """
    worker = Worker(settings(node, await token_for(node, "system"), "FAIL", script, tail_bytes=1000))
    async with role_client(node, "operator") as ops:
        task = await dispatch(ops, "FAIL", max_attempts=1)
        with trio.fail_after(20):
            await worker.run()
        final = (await ops.get(f"/tasks/{task['task_id']}")).json()
    assert final["status"] == "dead"
    assert final["error"].startswith("exit code 3\n") and final["error"].endswith("the real reason")
    assert len(final["error"]) < 1100  # bounded tail
    assert worker.completed == {"failed": 1}


async def test_cancelling_a_running_task_stops_the_whole_process_group(
    node: RunningNode, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    script = f"""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}} .")
        time.sleep(60)
    """
    worker = Worker(settings(node, await token_for(node, "system"), "CANCEL", script))
    async with role_client(node, "operator") as ops, trio.open_nursery() as nursery:
        task = await dispatch(ops, "CANCEL")
        nursery.start_soon(worker.run)
        command, grandchild = await read_pids(pids)
        assert alive(command) and alive(grandchild)
        await wait_status(ops, task["task_id"], "running")
        await ops.post(f"/tasks/{task['task_id']}/cancel")
        final = await wait_status(ops, task["task_id"], "cancelled", limit=15)
    assert final["finished"] is True
    assert not alive(command) and not alive(grandchild)
    assert worker.completed == {"cancelled": 1}


async def test_a_task_that_times_out_is_taken_away_and_its_command_stopped(
    node: RunningNode, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    script = f"""
        import os, time
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} .")
        time.sleep(60)
    """
    worker = Worker(settings(node, await token_for(node, "system"), "SLOW", script))
    async with role_client(node, "operator") as ops:
        task = await dispatch(ops, "SLOW", timeout=0.5, max_attempts=1)
        with trio.fail_after(20):
            await worker.run()
        (command,) = await read_pids(pids)
        final = (await ops.get(f"/tasks/{task['task_id']}")).json()
    assert final["status"] == "dead" and not alive(command)
    assert worker.completed == {"lost": 1}  # the node took it away: nothing was reported


async def test_a_refused_token_ends_the_worker(node: RunningNode) -> None:
    async with role_client(node, "operator") as ops:
        token = ops.headers["Authorization"].removeprefix("Bearer ")
    worker = Worker(settings(node, token, "ANY", "pass"))
    with trio.fail_after(10), pytest.raises(WorkerRefused, match="403"):
        await worker.run()


async def test_stop_while_idle_ends_the_claim_at_once(node: RunningNode) -> None:
    worker = Worker(settings(node, await token_for(node, "system"), "IDLE", "pass", claim_wait=30.0))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.run)
            await trio.sleep(0.3)
            worker.stop()
    assert worker.done == 0


async def test_sigterm_gives_the_command_its_grace_then_hands_the_task_back(
    node: RunningNode, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    script = f"import os, time; open({str(pids)!r}, 'w').write(f'{{os.getpid()}} .'); time.sleep(60)"
    token = await token_for(node, "system")
    argv = [sys.executable, "-m", "orch", "worker", "--core", "SIGTERM", "--url", node.url, "--token", token]
    argv += [
        "--grace",
        "0.5",
        "--heartbeat",
        "0.2",
        "--wait",
        "1",
        "--quiet",
        "--",
        sys.executable,
        "-c",
        script,
    ]
    async with role_client(node, "operator") as ops:
        task = await dispatch(ops, "SIGTERM", max_attempts=3)
        process = await trio.lowlevel.open_process(argv, env=ENV, stderr=subprocess.PIPE)
        try:
            (command,) = await read_pids(pids)
            await wait_status(ops, task["task_id"], "running")
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(15):
                code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        final = await wait_status(ops, task["task_id"], "queued")
        events = (await ops.get(f"/jobs/{task['task_id']}/events")).json()["events"]
    assert code == 0
    assert not alive(command)
    assert final["attempts"] == 0 and final["error"] is None  # handed back: the attempt is not spent
    assert events[-1]["type"] == "task.queued" and events[-1]["data"]["reason"] == "released"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_the_worker_reconnects_with_backoff_when_the_node_comes_back(
    start_node: StartNode, tmp_path: Path
) -> None:
    port, data = free_port(), tmp_path / "shared-data"
    first = await start_node(**{"server.port": port, "database.data_dir": data})
    token = await token_for(first, "system")
    first.node.request_shutdown()
    with trio.fail_after(10):
        while db_in_use(data / "orch.db"):  # noqa: ASYNC110 - the first node is unwinding
            await trio.sleep(0.05)
    worker = Worker(settings(first, token, "BACK", "print('back')"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.run)
        await trio.sleep(0.5)  # several refused connections, backing off
        second = await start_node(**{"server.port": port, "database.data_dir": data})
        async with role_client(second, "admin") as admin:
            task = await dispatch(admin, "BACK")
            final = await wait_status(admin, task["task_id"], "succeeded", limit=20)
    assert final["result"]["stdout"] == "back\n"


async def test_a_command_that_cannot_start_fails_the_attempt_and_the_worker_goes_on(
    node: RunningNode,
) -> None:
    worker = Worker(settings(node, await token_for(node, "system"), "NOEXEC", "", max_tasks=2))
    worker = Worker(replace(worker.settings, command=("/nonexistent/orch-test-command",)))
    async with role_client(node, "operator") as ops:
        first = await dispatch(ops, "NOEXEC", max_attempts=1)
        second = await dispatch(ops, "NOEXEC", max_attempts=1)
        with trio.fail_after(20):
            await worker.run()
        for task in (first, second):
            final = (await ops.get(f"/tasks/{task['task_id']}")).json()
            assert final["status"] == "dead"
            assert final["error"].startswith("exit code 127\ncannot start '/nonexistent/orch-test-command'")
    assert worker.completed == {"failed": 2}
