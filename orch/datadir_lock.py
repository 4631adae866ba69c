"""One node per database file: an advisory `flock` on `<db>.lock`, held for the node's whole life.

SQLite mode is single-node (DESIGN §6), so a second `orch serve` on the same file is refused, and offline
tools (`orch restore`, `orch migrate`) take the same lock so that they never run beside a live node. The
kernel drops the lock when the holder exits, even by SIGKILL, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["DataDirInUse", "db_in_use", "hold_db_lock", "lock_path"]


class DataDirInUse(RuntimeError):
    """Another process (a running node, a restore) holds the database lock."""

    def __init__(self, db_path: Path, holder: str) -> None:
        who = f" (pid {holder})" if holder else ""
        super().__init__(f"{db_path} is in use by another orch process{who}")
        self.db_path = db_path
        self.holder = holder


def lock_path(db_path: Path) -> Path:
    """The lock file that guards `db_path`."""
    return db_path.with_name(db_path.name + ".lock")


@contextmanager
def hold_db_lock(db_path: Path) -> Iterator[None]:
    """Hold the lock of `db_path` (creating its directory) or raise `DataDirInUse` at once."""
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirInUse(db_path, _read_holder(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def db_in_use(db_path: Path) -> bool:
    """True when some process holds the lock of `db_path` right now."""
    path = lock_path(db_path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
