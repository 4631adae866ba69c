"""The dispatcher's tables (component ``dispatcher``, forward migrations; events live in the storage layer).

Index plan (each one serves one hot query, all partial so finished rows cost nothing):

* ``tasks_claim (core_id, rank, seq, priority, not_before, status) WHERE status = 'queued'`` — a claim is
  one ordered range scan of a core's queued rows: O(log n) at any depth. Rows not yet due (``not_before >
  now``) are skipped by the scan without reading the row; only those with a smaller rank are visited, i.e.
  higher-priority tasks due within their priority head start. The trailing columns make it cover the queue
  statistics (per core and priority: count and oldest due), which otherwise read every queued row from the
  table each refresh (~0.2 s of CPU at 200,000 queued; migration 3).
* ``tasks_lease (lease_expires_at)`` / ``tasks_deadline (deadline_at)`` over claimed+running rows — sweeps.
* ``tasks_retry (not_before) WHERE status = 'retrying'`` — promotion of due retries.
* ``tasks_idem (core_id, idempotency_key)`` unique where a key is set — idempotent dispatch.
* ``tasks_finished (finished_at)`` — retention.
* ``tasks_core_seq`` — list pages of a core, newest first. There is deliberately no index on ``status``
  alone: every status change would update it (several per task); listing by status walks ``seq``
  backwards instead, and the statistics read the partial indexes above.

``core_isolation`` holds one row per isolated core (read whole at start-up; it is tiny).

``seq`` is the integer primary key (rowid): dispatch order, the FIFO tie-break and the list cursor.

The ``status`` CHECK is a chain of ``=`` tests, not ``status IN (...)``: SQLite evaluates a CHECK with an IN
list of three or more constants by building a temporary B-tree of the list on every INSERT and every UPDATE
that sets ``status`` (~4 us each, three times per task; migration 3 rebuilt the table for it).
"""

from __future__ import annotations

import re

from actors.storage import Migration

COMPONENT = "dispatcher"

_IN_LIST_CHECK = """status IN ('queued', 'claimed', 'running', 'succeeded',
                             'failed', 'timed_out', 'cancelled', 'retrying', 'dead')"""
_EQUALITY_CHECK = " OR ".join(f"status = '{status}'" for status in re.findall(r"'(\w+)'", _IN_LIST_CHECK))


def _tasks_table(name: str, status_check: str) -> str:
    return f"""
    CREATE TABLE {name} (
        seq              INTEGER PRIMARY KEY,
        id               TEXT NOT NULL UNIQUE,
        core_id          TEXT NOT NULL,
        priority         INTEGER NOT NULL DEFAULT 0,
        status           TEXT NOT NULL CHECK ({status_check}),
        attempts         INTEGER NOT NULL DEFAULT 0,
        max_attempts     INTEGER NOT NULL DEFAULT 3,
        timeout_s        REAL,
        metadata         TEXT NOT NULL DEFAULT '{{}}',
        stay             INTEGER NOT NULL DEFAULT 0,
        idempotency_key  TEXT,
        not_before       REAL NOT NULL,
        rank             REAL NOT NULL,
        lease_token      TEXT,
        lease_s          REAL,
        lease_expires_at REAL,
        deadline_at      REAL,
        claimed_by       TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        progress         TEXT,
        result           TEXT,
        error            TEXT,
        created_at       REAL NOT NULL,
        updated_at       REAL NOT NULL,
        finished_at      REAL
    );
"""


def _indexes(claim_key: str) -> str:
    return f"""
    CREATE INDEX tasks_claim ON tasks ({claim_key}) WHERE status = 'queued';
    CREATE INDEX tasks_lease ON tasks (lease_expires_at) WHERE status IN ('claimed', 'running');
    CREATE INDEX tasks_deadline ON tasks (deadline_at)
        WHERE status IN ('claimed', 'running') AND deadline_at IS NOT NULL;
    CREATE INDEX tasks_retry ON tasks (not_before) WHERE status = 'retrying';
    CREATE UNIQUE INDEX tasks_idem ON tasks (core_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;
    CREATE INDEX tasks_core_seq ON tasks (core_id, seq);
"""


# Version 3: the same table (same column order, so SELECT * copies it); the status CHECK without an IN list,
# and the claim index covering what the queue statistics read (see the module docstring).
_TASKS_WITHOUT_IN_CHECK = (
    _tasks_table("tasks_v3", _EQUALITY_CHECK)
    + """
    INSERT INTO tasks_v3 SELECT * FROM tasks ORDER BY seq;
    DROP TABLE tasks;
    ALTER TABLE tasks_v3 RENAME TO tasks;
"""
    + _indexes("core_id, rank, seq, priority, not_before, status")
)

MIGRATIONS: list[Migration] = [
    _tasks_table("tasks", _IN_LIST_CHECK) + _indexes("core_id, rank"),
    # Isolated cores (the monitor's recovery action); a row exists only while the core is isolated.
    """
    CREATE TABLE core_isolation (
        core_id  TEXT PRIMARY KEY,
        fallback TEXT,
        since    REAL NOT NULL,
        reason   TEXT
    );
    """,
    _TASKS_WITHOUT_IN_CHECK,
]
