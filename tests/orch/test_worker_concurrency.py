"""`orch worker --concurrency N`: N commands run at once, their tasks claimed together, each reported."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import trio

from orch.cli import CliError
from orch.server import RunningNode
from orch.worker import Worker
from orch.worker_cli import register, settings_from_args

from .auth_helpers import token_for
from .task_helpers import dispatch, role_client
from .test_worker import settings

pytestmark = pytest.mark.integration

BARRIER = """
    import os, pathlib, sys, time
    gate = pathlib.Path({gate!r})
    (gate / os.environ["ORCH_TASK_ID"]).write_text("here")
    deadline = time.monotonic() + 15
    while len(list(gate.iterdir())) < {n} and time.monotonic() < deadline:
        time.sleep(0.02)
    sys.exit(0 if len(list(gate.iterdir())) >= {n} else 3)
"""


async def test_a_concurrent_worker_runs_its_tasks_at_once_and_reports_each(
    node: RunningNode, tmp_path: Path
) -> None:
    # Each command waits until all four have started: they succeed only if they ran at the same time.
    script = BARRIER.format(gate=str(tmp_path), n=4)
    token = await token_for(node, "system")
    worker = Worker(settings(node, token, "CONC", script, concurrency=4, max_tasks=4))
    async with role_client(node, "operator") as ops:
        ids = [(await dispatch(ops, "CONC"))["task_id"] for _ in range(4)]
        with trio.fail_after(30):
            await worker.run()
        finals = [(await ops.get(f"/tasks/{task_id}")).json() for task_id in ids]
    assert [f["status"] for f in finals] == ["succeeded"] * 4, finals
    assert worker.completed == {"succeeded": 4}


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["worker", "--core", "C", *argv, "--", "true"])


def test_concurrency_flag_is_checked() -> None:
    assert settings_from_args(_parse("--concurrency", "8")).concurrency == 8
    assert settings_from_args(_parse()).concurrency == 1
    for bad in ("0", "1001"):
        with pytest.raises(CliError):
            settings_from_args(_parse("--concurrency", bad))
