"""Fixtures for the storage tests: a database path and a gate that holds the writer thread inside a batch."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio

from actors.storage import Database, StoredEvent, Tx

THREAD_WAIT = 10.0  # seconds; a safety net only, tests never sleep


class Gate:
    """A write op that blocks the writer thread until `open()`, so later writes pile up in the queue."""

    def __init__(self) -> None:
        self._entered = threading.Event()
        self._release = threading.Event()

    def op(self, tx: Tx) -> str:
        self._entered.set()
        if not self._release.wait(THREAD_WAIT):
            raise TimeoutError("gate was never opened")
        return "gate"

    async def wait_entered(self) -> None:
        """Wait until the writer thread is inside the gate op."""
        if not await trio.to_thread.run_sync(self._entered.wait, THREAD_WAIT):
            raise TimeoutError("gate op never started")

    def open(self) -> None:
        self._release.set()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "orch.db"


@pytest.fixture
def gate() -> Gate:
    return Gate()


ITEMS_SCHEMA = ["CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)"]

AddItem = Callable[..., Callable[[Tx], int]]


def _add_item(name: str, *, event: str | None = "item.added") -> Callable[[Tx], int]:
    def op(tx: Tx) -> int:
        cur = tx.conn.execute("INSERT INTO items (name) VALUES (?)", (name,))
        if event is not None:
            tx.emit(event, subject=name, data={"name": name})
        assert cur.lastrowid is not None
        return cur.lastrowid

    return op


@pytest.fixture
def add_item() -> AddItem:
    """``add_item(name)`` -> an op inserting into ``items`` and emitting ``item.added`` (subject = name)."""
    return _add_item


@pytest.fixture
def published() -> list[StoredEvent]:
    return []


@pytest.fixture
async def db(db_path: Path, published: list[StoredEvent]) -> AsyncIterator[Database]:
    """An open database with an ``items`` table whose publish callback appends to ``published``."""
    async with Database.open(db_path, publish=published.extend) as database:
        await database.migrate("items", ITEMS_SCHEMA)
        yield database
