"""Data-dir subcommands of `orch`: online backup, verified restore, schema migration.

    orch backup PATH [--data-dir DIR | --config FILE] [--force]    (safe while the node runs)
    orch restore PATH [--data-dir DIR | --config FILE] [--force]   (refused while a node runs on it)
    orch migrate [--data-dir DIR | --config FILE]                   (refused while a node runs on it)

Backups use SQLite's online backup API (a consistent snapshot even while the node writes; in WAL mode
it does not block the node), are converted to a single self-contained file (journal_mode=DELETE) and
verified with `PRAGMA integrity_check` before they are moved into place. A restore verifies the backup
first, copies it next to the database, verifies the copy, drops the old WAL files and renames it in.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import trio

from orch.cli import EXIT_FAILURE, CliError
from orch.config import Config, ConfigError, load_config
from orch.datadir_lock import DataDirInUse, hold_db_lock

__all__ = ["backup_database", "migrate_database", "register", "restore_database", "verify_database"]

_SIDE_FILES = ("-wal", "-shm", "-journal")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `backup`, `restore` and `migrate`."""
    p = sub.add_parser("backup", help="copy the database to PATH (online, verified)")
    p.add_argument("path", type=Path, help="backup file to write")
    p.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    _add_data_args(p)
    p.set_defaults(handler=_cmd_backup)

    p = sub.add_parser("restore", help="replace the database with a backup (node must be stopped)")
    p.add_argument("path", type=Path, help="backup file to restore")
    p.add_argument("--force", action="store_true", help="replace an existing database")
    _add_data_args(p)
    p.set_defaults(handler=_cmd_restore)

    p = sub.add_parser("migrate", help="bring the database schema up to date (node must be stopped)")
    _add_data_args(p)
    p.set_defaults(handler=_cmd_migrate)


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", type=Path, help="YAML config file (default: $ORCH_CONFIG)")
    parser.add_argument("--data-dir", type=Path, help="data directory (default: ./data, or $ORCH_DATA_DIR)")


def _config(args: argparse.Namespace) -> Config:
    try:
        return load_config(args.config, overrides={"database.data_dir": args.data_dir})
    except ConfigError as exc:
        raise CliError("invalid configuration:\n  " + "\n  ".join(exc.problems)) from None


@contextmanager
def _exclusive(db_path: Path) -> Iterator[None]:
    try:
        with hold_db_lock(db_path):
            yield
    except DataDirInUse as exc:
        raise CliError(f"refusing: {exc}; stop the node first", EXIT_FAILURE) from None


def verify_database(path: Path) -> str:
    """`ok`, or the first problem `PRAGMA integrity_check` (or opening the file) reports."""
    try:
        with closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as conn:
            row = conn.execute("PRAGMA integrity_check").fetchone()
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        return f"not a readable SQLite database ({exc})"
    if row is None or row[0] != "ok":
        return str(row[0] if row else "integrity_check returned nothing")
    if not {"events", "schema_versions"} <= tables:
        return "not an orch database (no events/schema_versions tables)"
    return "ok"


def _copy(source: Path, target: Path) -> None:
    """Online-backup `source` into a fresh `target` (a single file, journal_mode=DELETE)."""
    for suffix in ("", *_SIDE_FILES):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)  # one step: a consistent snapshot; in WAL mode the node keeps writing meanwhile
        dst.execute("PRAGMA journal_mode=DELETE")
    _fsync(target)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup_database(source: Path, target: Path) -> None:
    """Copy `source` to `target` through a verified temporary file (CliError on any problem)."""
    if not source.is_file():
        raise CliError(f"no database at {source}", EXIT_FAILURE)
    partial = target.with_name(target.name + ".partial")
    try:
        _copy(source, partial)
        verdict = verify_database(partial)
        if verdict != "ok":
            raise CliError(f"backup failed verification: {verdict}", EXIT_FAILURE)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def restore_database(backup: Path, db_path: Path) -> None:
    """Replace `db_path` by `backup` (the caller holds the database lock)."""
    verdict = verify_database(backup)
    if verdict != "ok":
        raise CliError(f"{backup} failed verification: {verdict}", EXIT_FAILURE)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    staged = db_path.with_name(db_path.name + ".restoring")
    try:
        _copy(backup, staged)
        verdict = verify_database(staged)
        if verdict != "ok":
            raise CliError(f"the restored copy failed verification: {verdict}", EXIT_FAILURE)
        # The old WAL must go BEFORE the rename: its frames would otherwise be replayed onto the new file.
        for suffix in _SIDE_FILES:
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        os.replace(staged, db_path)
        _fsync(db_path.parent)
    finally:
        staged.unlink(missing_ok=True)


async def migrate_database(db_path: Path, synchronous: str = "FULL") -> dict[str, int]:
    """Run every store's forward migrations on `db_path`; returns component -> schema version."""
    from actors.dispatcher.schema import COMPONENT as DISPATCHER
    from actors.dispatcher.schema import MIGRATIONS as DISPATCHER_MIGRATIONS
    from actors.locks.store import COMPONENT as LOCKS
    from actors.locks.store import MIGRATIONS as LOCKS_MIGRATIONS
    from actors.security.store import COMPONENT as SECURITY
    from actors.security.store import MIGRATIONS as SECURITY_MIGRATIONS
    from actors.storage import Database

    async with Database.open(db_path, synchronous=synchronous) as db:
        for component, migrations in (
            (DISPATCHER, DISPATCHER_MIGRATIONS),
            (LOCKS, LOCKS_MIGRATIONS),
            (SECURITY, SECURITY_MIGRATIONS),
        ):
            await db.migrate(component, migrations)
        query = "SELECT component, version FROM schema_versions"
        rows = await db.read(lambda conn: conn.execute(query).fetchall())
    return {str(name): int(version) for name, version in rows}


def _cmd_backup(args: argparse.Namespace) -> int:
    source = _config(args).database.db_path
    target: Path = args.path
    if target.exists() and not args.force:
        raise CliError(f"{target} exists (use --force to overwrite)")
    if target.resolve() == source.resolve():
        raise CliError("the backup path is the database itself")
    backup_database(source, target)
    print(f"backup of {source} written to {target} ({target.stat().st_size} bytes, integrity ok)")
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    config = _config(args)
    db_path = config.database.db_path
    if not args.path.is_file():
        raise CliError(f"no backup file at {args.path}")
    with _exclusive(db_path):
        if db_path.exists() and not args.force:
            raise CliError(f"{db_path} exists; restoring replaces it (use --force)")
        restore_database(args.path, db_path)
    print(f"restored {args.path} into {db_path} (integrity ok)")
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    config = _config(args)
    db_path = config.database.db_path
    with _exclusive(db_path):
        versions = trio.run(migrate_database, db_path, config.database.synchronous)
    print(f"{db_path}: " + ", ".join(f"{name} v{version}" for name, version in sorted(versions.items())))
    return 0
