"""`DatabaseOpener`: what `Database.open` returns — usable with ``async with`` or ``await``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Generic, TypeVar

import trio

D = TypeVar("D")
log = logging.getLogger(__name__)


class DatabaseOpener(Generic[D]):
    """Opens a database and starts its writer loop, in one of two shapes.

    ``async with opener as db``: the writer loop runs in a nursery owned by the ``async with`` block
    (structured: a crash of the loop propagates out of the block); leaving the block flushes pending writes
    and closes.

    ``db = await opener``: the writer loop runs as a Trio system task (lives until ``await db.aclose()`` or
    the end of ``trio.run``); for owners whose lifetime is not a block, e.g. an actor's on_start/on_stop.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[D]],
        run_writer: Callable[[D], Awaitable[None]],
        close: Callable[[D], Awaitable[None]],
    ) -> None:
        self._connect = connect
        self._run_writer = run_writer
        self._close = close
        self._scope: AbstractAsyncContextManager[D] | None = None

    def __await__(self) -> Generator[Any, None, D]:
        return self._open_unscoped().__await__()

    async def _open_unscoped(self) -> D:
        db = await self._connect()
        trio.lowlevel.spawn_system_task(self._run_as_system_task, db, name="orch-storage-writer")
        return db

    async def _run_as_system_task(self, db: D) -> None:
        # An exception escaping a system task would abort the whole run as TrioInternalError; the loop has
        # already failed every pending write, so logging is the right level here.
        try:
            await self._run_writer(db)
        except Exception:
            log.exception("storage writer loop crashed; the database is now closed")

    @asynccontextmanager
    async def _open_scoped(self) -> AsyncIterator[D]:
        db = await self._connect()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._run_writer, db, name="orch-storage-writer")
            try:
                yield db
            finally:
                await self._close(db)

    async def __aenter__(self) -> D:
        if self._scope is not None:
            raise RuntimeError("a DatabaseOpener can be entered only once")
        self._scope = self._open_scoped()
        return await self._scope.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._scope is not None
        return await self._scope.__aexit__(exc_type, exc, tb)
