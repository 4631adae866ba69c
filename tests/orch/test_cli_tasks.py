"""The task CLI against a real node: `orch dispatch` (incl. --stay and its exit codes), `tasks`, `cancel`,
`locks`, `status`, and the data-dir commands `backup`, `restore`, `migrate`.

The CLI runs in a worker thread (it calls `trio.run` itself for --stay), so its prints are captured."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio

from orch.cli import main
from orch.datadir_lock import db_in_use
from orch.server import RunningNode

from .auth_helpers import token_for
from .helpers import StartNode
from .task_helpers import claim, dispatch, report, role_client, wait_status

pytestmark = pytest.mark.integration

Capture = pytest.CaptureFixture[str]


async def orch(*argv: str) -> int:
    """Run `orch ARGV...` like a user would (in a thread: it may run its own Trio loop)."""
    return await trio.to_thread.run_sync(main, list(argv))


async def cli(node: RunningNode, role: str, *argv: str) -> int:
    return await orch(*argv, "--url", node.url, "--token", await token_for(node, role))


async def work_one(node: RunningNode, core: str, act: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Claim one task of `core` and report what `act` says (a scripted worker)."""
    async with role_client(node, "system") as worker:
        claimed = await claim(worker, core, wait=20)
        await report(worker, claimed, "running")
        await trio.sleep(0.2)
        assert (await report(worker, claimed, **act(claimed))).status_code == 200


async def test_dispatch_prints_a_line_the_id_or_json(node: RunningNode, capsys: Capture) -> None:
    assert await cli(node, "operator", "dispatch", "--core", "CLI1", "--priority", "3", "--meta", "a=b") == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("queued ") and "core=CLI1" in line and "priority=3" in line
    assert await cli(node, "operator", "dispatch", "--core", "CLI1", "-q") == 0
    task_id = capsys.readouterr().out.strip()
    assert await cli(node, "operator", "dispatch", "--core", "CLI1", "--json", "--meta", "k=v=w") == 0
    task = json.loads(capsys.readouterr().out)
    assert task["metadata"] == {"k": "v=w"} and task["status"] == "queued"
    async with role_client(node, "viewer") as viewer:
        assert (await viewer.get(f"/tasks/{task_id}")).json()["core_id"] == "CLI1"


@pytest.mark.parametrize("role", ["operator", "system"])  # system may not stream events: long-poll instead
async def test_dispatch_stay_follows_the_task_and_exits_0_on_success(
    node: RunningNode, capsys: Capture, role: str
) -> None:
    codes: list[int] = []
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            codes.append(await cli(node, role, "dispatch", "--core", "STAY_OK", "--stay"))

        nursery.start_soon(run)
        await work_one(node, "STAY_OK", lambda _: {"status": "succeeded", "result": {"answer": 42}})
    assert codes == [0]
    captured = capsys.readouterr()
    assert captured.out.startswith("succeeded ") and '"answer":42' in captured.out
    if role == "operator":  # the live events were shown while waiting
        assert "task.running" in captured.err and "task.succeeded" in captured.err


@pytest.mark.parametrize(
    ("outcome", "code"),
    [({"status": "failed", "error": "exit code 3"}, 1), ({"status": "cancelled"}, 3)],
)
async def test_dispatch_stay_exits_with_the_tasks_outcome(
    node: RunningNode, capsys: Capture, outcome: dict[str, Any], code: int
) -> None:
    codes: list[int] = []
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            argv = ("dispatch", "--core", "STAY_END", "--stay", "--max-attempts", "1", "-q")
            codes.append(await cli(node, "operator", *argv))

        nursery.start_soon(run)
        await work_one(node, "STAY_END", lambda _: outcome)
    assert codes == [code]


async def test_dispatch_stay_gives_up_after_wait_timeout_with_exit_5(
    node: RunningNode, capsys: Capture
) -> None:
    argv = ("dispatch", "--core", "NOBODY_HOME", "--stay", "--wait-timeout", "0.5")
    assert await cli(node, "operator", *argv) == 5
    captured = capsys.readouterr()
    assert captured.out.startswith("queued ") and "still queued" in captured.err


async def test_refusals_exit_2_and_an_unreachable_node_exits_4(node: RunningNode, capsys: Capture) -> None:
    assert await cli(node, "operator", "dispatch", "--core", "bad core") == 2
    assert "core_id" in capsys.readouterr().err
    assert await cli(node, "viewer", "dispatch", "--core", "C") == 2
    assert "403" in capsys.readouterr().err
    assert await orch("tasks", "--url", "http://127.0.0.1:9") == 4
    assert "cannot reach the node" in capsys.readouterr().err


async def test_tasks_lists_a_table_shows_one_and_cancel_works(node: RunningNode, capsys: Capture) -> None:
    async with role_client(node, "operator") as ops:
        ids = [(await dispatch(ops, "LIST"))["task_id"] for _ in range(3)]
    assert await cli(node, "viewer", "tasks", "--core", "LIST", "--limit", "2", "--all") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["TASK", "CORE", "STATUS", "PRIO", "TRIES", "CREATED", "WORKER"]
    assert sorted(line.split()[0] for line in out[1:]) == sorted(ids)
    assert await cli(node, "operator", "cancel", ids[0], "--reason", "cli test") == 0
    assert capsys.readouterr().out.startswith(f"cancelled {ids[0]}")
    assert await cli(node, "viewer", "tasks", ids[0], "--json") == 0
    assert json.loads(capsys.readouterr().out)["status"] == "cancelled"
    assert await cli(node, "viewer", "tasks", "--status", "bogus") == 2


async def test_locks_and_status_render_tables_and_the_tree(node: RunningNode, capsys: Capture) -> None:
    async with role_client(node, "operator") as ops:
        await ops.post("/locks/gpu-1/acquire", json={"owner": "alice", "ttl": 60})
        await dispatch(ops, "STATUS")
    assert await cli(node, "viewer", "locks") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["RESOURCE", "OWNER", "MODE"] and lines[1].split()[:3] == [
        "gpu-1",
        "alice",
        "exclusive",
    ]
    assert await cli(node, "operator", "status") == 0
    tree = capsys.readouterr().out
    assert tree.startswith("root (one_for_one, running)")
    assert "├── " in tree and "dispatcher  running  restarts=0" in tree and "└── " in tree
    assert "STATUS" in tree  # the queue table under the tree


async def _stopped(running: RunningNode, db_path: Path) -> None:
    running.node.request_shutdown()
    with trio.fail_after(10):
        while db_in_use(db_path):  # noqa: ASYNC110 - the node unwinds in its own task
            await trio.sleep(0.05)


def _task_ids(db_path: Path) -> set[str]:
    with closing(sqlite3.connect(db_path)) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM tasks")}


async def test_backup_while_running_then_restore_round_trips(
    start_node: StartNode, tmp_path: Path, capsys: Capture
) -> None:
    data = tmp_path / "data"
    db_path = data / "orch.db"
    running = await start_node(**{"database.data_dir": data})
    async with role_client(running, "operator") as ops:
        before = {(await dispatch(ops, "BACKUP"))["task_id"] for _ in range(20)}
        backup = tmp_path / "orch-backup.db"
        assert await orch("backup", str(backup), "--data-dir", str(data)) == 0  # online
        assert "integrity ok" in capsys.readouterr().out
        after = (await dispatch(ops, "BACKUP"))["task_id"]
    assert await orch("backup", str(backup), "--data-dir", str(data)) == 2  # exists: needs --force
    assert await orch("restore", str(backup), "--data-dir", str(data), "--force") == 1
    assert "refusing" in capsys.readouterr().err  # the node still runs on it
    await _stopped(running, db_path)
    assert await orch("restore", str(backup), "--data-dir", str(data)) == 2  # would replace: needs --force
    assert await orch("restore", str(backup), "--data-dir", str(data), "--force") == 0
    assert _task_ids(db_path) == before and after not in before
    again = await start_node(**{"database.data_dir": data})
    async with role_client(again, "admin") as admin:
        listed = (await admin.get("/tasks", params={"core_id": "BACKUP", "limit": 100})).json()["tasks"]
    assert {t["task_id"] for t in listed} == before


async def test_restore_refuses_a_corrupt_backup(tmp_path: Path, capsys: Capture) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    assert await orch("restore", str(bogus), "--data-dir", str(tmp_path / "d"), "--force") == 1
    assert "failed verification" in capsys.readouterr().err
    assert not (tmp_path / "d" / "orch.db").exists()


async def test_migrate_brings_a_fresh_data_dir_up_to_date_and_refuses_beside_a_node(
    start_node: StartNode, tmp_path: Path, capsys: Capture
) -> None:
    fresh = tmp_path / "fresh"
    assert await orch("migrate", "--data-dir", str(fresh)) == 0
    out = capsys.readouterr().out
    assert "dispatcher v" in out and "locks v" in out and "security v" in out
    assert await orch("migrate", "--data-dir", str(fresh)) == 0  # idempotent
    capsys.readouterr()
    running = await start_node(**{"database.data_dir": fresh})
    assert await orch("migrate", "--data-dir", str(fresh)) == 1
    assert "refusing" in capsys.readouterr().err
    async with role_client(running, "operator") as ops:
        await wait_status(ops, (await dispatch(ops, "MIGRATED"))["task_id"], "queued")


async def test_worker_usage_errors_exit_2(capsys: Capture) -> None:
    assert await orch("worker", "--core", "C") == 2
    assert "needs a command" in capsys.readouterr().err
    assert await orch("worker", "--core", "C", "--lease", "5", "--heartbeat", "9", "--", "true") == 2


async def test_the_http_client_sends_the_token_from_the_environment(
    node: RunningNode, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    monkeypatch.setenv("ORCH_URL", node.url)
    monkeypatch.setenv("ORCH_TOKEN", await token_for(node, "operator"))
    assert await orch("dispatch", "--core", "ENVTOKEN", "-q") == 0
    assert capsys.readouterr().out.strip()
    monkeypatch.setenv("ORCH_TOKEN", "not-a-token")
    assert await orch("tasks") == 2
    assert "401" in capsys.readouterr().err


async def test_a_second_orch_serve_on_the_same_database_is_refused_in_one_line(
    start_node: StartNode, tmp_path: Path
) -> None:
    data = tmp_path / "held"
    await start_node(**{"database.data_dir": data})
    argv = [sys.executable, "-m", "orch", "serve", "--port", "0", "--data-dir", str(data)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    with trio.fail_after(30):
        result = await trio.run_process(argv, env=env, capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 1
    err = result.stderr.decode().strip().splitlines()
    assert err[-1].startswith("orch: error: ") and "in use by another orch process" in err[-1]
    assert b"Traceback" not in result.stderr
