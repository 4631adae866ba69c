"""Fixtures: a dispatcher on a fresh SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio.testing

from .harness import QUIET, Harness, running_dispatcher


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time that jumps ahead once every task has been idle for 50 ms of real time.

    Not pytest-trio's ``autojump_clock`` (threshold 0): a task waiting for a database thread counts as
    idle, so with threshold 0 the clock would leap to the next timer during every write (days of virtual
    time per test, every lease expiring). 50 ms is far above a write's real duration here.
    """
    return trio.testing.MockClock(autojump_threshold=0.05)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "orch.db"


@pytest.fixture
async def dispatcher(db_path: Path) -> AsyncIterator[Harness]:
    async with running_dispatcher(db_path) as harness:
        yield harness


@pytest.fixture
async def quiet_dispatcher(db_path: Path) -> AsyncIterator[Harness]:
    async with running_dispatcher(db_path, config=QUIET) as harness:
        yield harness
