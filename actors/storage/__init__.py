"""The shared storage layer: one SQLite file, group-committed writes, and the event log.

    from actors.storage import Database, Tx, StoredEvent, Migration

    async with Database.open("data/orch.db", publish=publish_batch) as db:
        await db.migrate("dispatcher", DISPATCHER_MIGRATIONS)
        task_id = await db.write(lambda tx: insert_task(tx, ...))    # durable when it returns
        rows = await db.read(lambda conn: conn.execute("SELECT ...").fetchall())

Every store (dispatcher, locks, security, ...) shares the one `Database`: one writer connection in a worker
thread (all writes of all stores are group-committed together, so event seq order == commit order == publish
order), one reader connection in another thread (WAL: reads never wait for writes), and a checkpointer
connection in a third, so WAL checkpoints never run inside a COMMIT (`CheckpointPolicy`).

PostgreSQL later: SQLite details live in `sqlite.py`, `batch.py` and `schema.py`; `Database`'s public surface
(`open`, `write`, `read`, `migrate`, `events_after`, `last_seq`, `prune_events`, `aclose`, `statistics`) is
backend-neutral except for the connection type handed to ops. A PostgreSQL backend would keep the same class
shape with a psycopg connection per side: the same single-writer group commit per node (SAVEPOINTs work the
same), ``events.seq`` as a BIGINT identity, claims by ``FOR UPDATE SKIP LOCKED``, and cross-node fan-out by
publishing committed seqs over ``LISTEN/NOTIFY`` (receivers backfill with `events_after`). Stores should keep
their SQL in their own ``store.py`` so a second dialect is a second file, not a rewrite.
"""

from .checkpoint import CheckpointPolicy
from .database import MAX_BATCH, Database
from .errors import DatabaseClosedError, SchemaTooNewError, StorageError, TransactionLostError
from .events import EventItem, StoredEvent, Tx, TypedEventItem
from .opener import DatabaseOpener
from .schema import Migration
from .stats import DatabaseStats

__all__ = [
    "MAX_BATCH",
    "CheckpointPolicy",
    "Database",
    "DatabaseClosedError",
    "DatabaseOpener",
    "DatabaseStats",
    "EventItem",
    "Migration",
    "SchemaTooNewError",
    "StorageError",
    "StoredEvent",
    "TransactionLostError",
    "Tx",
    "TypedEventItem",
]
