"""`bench/` is not an installed package: put the repo root on sys.path (spawned load processes inherit it)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness.servers import ServerProcess, baseline_server  # noqa: E402


@pytest.fixture(scope="session")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The hello-world baseline app, shared by the bench tests (it starts in ~1-2 s)."""
    with baseline_server(tmp_path_factory.mktemp("baseline")) as server:
        yield server
