"""`orch login | users | tokens | admin create` against a real node over HTTP, and directly on a data dir."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
import trio

from orch.cli import main
from orch.server import RunningNode

from .auth_helpers import ADMIN_PASSWORD, bearer, login, token_for
from .helpers import StartNode

pytestmark = pytest.mark.integration


class Cli:
    """Runs `orch ...` in a worker thread (the node under test runs on this Trio loop)."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capsys = capsys
        self.monkeypatch = monkeypatch
        monkeypatch.delenv("ORCH_URL", raising=False)
        monkeypatch.delenv("ORCH_TOKEN", raising=False)

    async def __call__(self, argv: Sequence[str], stdin: str = "") -> tuple[int, str, str]:
        self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        self.capsys.readouterr()
        code = await trio.to_thread.run_sync(main, list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(capsys, monkeypatch)


async def test_login_prints_an_access_token_that_works(node: RunningNode, cli: Cli) -> None:
    code, out, _ = await cli(
        ["login", "--user", "admin", "--password-stdin", "--url", node.url], ADMIN_PASSWORD
    )
    assert code == 0
    async with httpx.AsyncClient(base_url=node.url) as http:
        assert (await http.get("/users", headers=bearer(out.strip()))).status_code == 200
    code, _, err = await cli(["login", "--user", "admin", "--password-stdin", "--url", node.url], "nope-nope")
    assert code == 1 and "401 invalid username or password" in err


async def test_users_commands_manage_users_over_http(node: RunningNode, cli: Cli) -> None:
    target = ["--url", node.url, "--token", await token_for(node, "admin")]
    code, out, _ = await cli(["users", "add", "bob", "--role", "viewer", "--generate", *target])
    assert code == 0
    password = re.search(r"password: (\S+)", out)
    assert password is not None and "created bob (viewer)" in out
    await login(node.url, "bob", password.group(1))

    code, out, _ = await cli(["users", "list", "--json", *target])
    assert [(u["name"], u["role"]) for u in json.loads(out)] == [("admin", "admin"), ("bob", "viewer")]
    assert (await cli(["users", "set-role", "bob", "operator", *target]))[1].startswith("bob: role operator")
    assert "disabled" in (await cli(["users", "disable", "bob", *target]))[1]
    assert "active" in (await cli(["users", "enable", "bob", *target]))[1]
    code, _, _ = await cli(
        ["users", "reset-password", "bob", "--password-stdin", *target], "bob-new-pass-1\n"
    )
    assert code == 0
    assert (await login(node.url, "bob", "bob-new-pass-1"))["role"] == "operator"

    code, _, err = await cli(["users", "add", "bob", "--role", "viewer", "--generate", *target])
    assert code == 1 and "409" in err
    code, _, err = await cli(["users", "list", "--url", node.url])
    assert code == 1 and "401" in err and "orch login" in err


async def test_tokens_commands_issue_list_and_revoke_worker_tokens(node: RunningNode, cli: Cli) -> None:
    target = ["--url", node.url, "--token", await token_for(node, "admin")]
    code, out, err = await cli(["tokens", "issue", "worker-ai-01", "--ttl", "600", *target])
    assert code == 0 and "shown once" in err
    token = out.strip()
    code, out, _ = await cli(["tokens", "list", "--json", *target])
    (listed,) = json.loads(out)
    assert listed["name"] == "worker-ai-01" and token not in out
    async with httpx.AsyncClient(base_url=node.url, headers=bearer(token)) as worker:
        assert (await worker.post("/cores/C1/claim", json={"wait": 0})).status_code == 204
        assert (await cli(["tokens", "revoke", listed["jti"], *target]))[0] == 0
        assert (await worker.post("/cores/C1/claim", json={"wait": 0})).status_code == 401
    assert "revoked" in (await cli(["tokens", "list", *target]))[1]


async def test_an_unreachable_node_is_a_clear_error(cli: Cli) -> None:
    code, _, err = await cli(["users", "list", "--url", "http://127.0.0.1:9", "--token", "t"])
    assert code == 1 and "cannot reach the node at http://127.0.0.1:9" in err


async def test_admin_create_and_tokens_work_directly_on_the_data_dir(
    tmp_path: Path, start_node: StartNode, cli: Cli
) -> None:
    data_dir = tmp_path / "offline"
    local = ["--data-dir", str(data_dir)]
    code, out, _ = await cli(
        ["admin", "create", "ops-admin", "--password-stdin", *local], "ops-admin-pass-1\n"
    )
    assert code == 0 and "created admin ops-admin" in out
    code, out, _ = await cli(["users", "list", *local])
    assert out.split() == ["ops-admin", "admin", "active"]
    code, out, _ = await cli(["tokens", "issue", "worker-1", *local])
    assert code == 0
    worker_token = out.strip()

    # The node started later on the same data dir knows both: same database, same persisted JWT secret.
    running = await start_node(**{"database.data_dir": data_dir})
    await login(running.url, "ops-admin", "ops-admin-pass-1")
    async with httpx.AsyncClient(base_url=running.url, headers=bearer(worker_token)) as worker:
        assert (await worker.post("/cores/C1/claim", json={"wait": 0})).status_code == 204
    code, _, err = await cli(["users", "list", *local])
    assert code == 1 and "a node is running on" in err


async def test_passwords_are_never_arguments_and_must_come_from_somewhere(tmp_path: Path, cli: Cli) -> None:
    code, _, err = await cli(["admin", "create", "--data-dir", str(tmp_path)])
    assert code == 2 and "--password-stdin" in err
    code, _, err = await cli(["admin", "create", "--password-stdin", "--data-dir", str(tmp_path)], "weak\n")
    assert code == 1 and "at least 8 characters" in err
