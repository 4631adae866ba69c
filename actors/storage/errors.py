"""Exceptions raised by the storage layer."""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error the storage layer raises on its own account."""


class DatabaseClosedError(StorageError):
    """The database is closed (or closing); no new reads or writes are accepted."""


class SchemaTooNewError(StorageError):
    """The file was written by a newer version of orch; refusing to run older code against it."""

    def __init__(self, component: str, found: int, known: int) -> None:
        super().__init__(
            f"schema of {component!r} is at version {found}, but this code only knows up to version {known}; "
            "refusing to downgrade (run a newer orch, or restore a matching backup)"
        )
        self.component = component
        self.found = found
        self.known = known


class TransactionLostError(StorageError):
    """A write op ended or lost the batch transaction, so no op of its batch is acknowledged.

    Raised at every caller of the batch. Typical causes: an op called ``conn.commit()``/``conn.rollback()``
    or ran BEGIN/COMMIT itself, or SQLite rolled the whole transaction back on a hard error (disk full, I/O).
    """
