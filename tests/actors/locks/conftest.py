"""Fixtures for the lock manager tests: a real SQLite file, a lock manager, and a test clock.

The clock is Trio's ``MockClock`` with a small autojump threshold instead of the ``autojump_clock`` fixture's
zero: the storage layer waits on a worker thread, which Trio counts as idle, so a zero threshold would jump
virtual time to the next lease deadline while a commit is still in flight.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from actors.locks.actor import LockManager
from actors.locks.messages import LockMsg
from actors.storage import Database
from runtime import ActorRef, open_actor

WALL_EPOCH = 1_800_000_000.0


def wall_clock() -> float:
    """Unix time that moves with Trio's (virtual) clock, so persisted deadlines follow the test clock."""
    return WALL_EPOCH + trio.current_time()


@pytest.fixture
def lock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.1)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "orch.db"


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[Database]:
    async with Database.open(db_path) as database:
        yield database


ManagerFactory = Callable[[Database], Callable[[], LockManager]]


def _manager_factory(db: Database) -> Callable[[], LockManager]:
    return lambda: LockManager(db, wall_clock=wall_clock)


@pytest.fixture
def open_manager() -> ManagerFactory:
    """``open_actor(open_manager(db))`` starts a lock manager on ``db`` with the test wall clock."""
    return _manager_factory


@pytest.fixture
async def locks(db: Database, lock_clock: trio.testing.MockClock) -> AsyncIterator[ActorRef[LockMsg]]:
    async with open_actor(_manager_factory(db), name="locks") as ref:
        yield ref
