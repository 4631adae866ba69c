"""Durability: acknowledged writes are on disk, across a clean reopen and across SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from actors.storage import Database

REPO_ROOT = Path(__file__).resolve().parents[3]

CHILD = """
import sys
import trio
from actors.storage import Database

async def writer(db, k):
    i = 0
    while True:
        n = k * 1_000_000 + i
        await db.write(lambda tx, n=n: (tx.conn.execute("INSERT INTO items (id) VALUES (?)", (n,)),
                                         tx.emit("item.added", data={"id": n})))
        print(n, flush=True)
        i += 1

async def main(path):
    async with Database.open(path) as db:
        await db.migrate("crash", ["CREATE TABLE items (id INTEGER PRIMARY KEY)"])
        async with trio.open_nursery() as nursery:
            for k in range(8):
                nursery.start_soon(writer, db, k)

trio.run(main, sys.argv[1])
"""


async def test_acknowledged_writes_survive_reopen(db_path: Path) -> None:
    async with Database.open(db_path) as db:
        await db.migrate("items", ["CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"])
        await db.write(lambda tx: tx.conn.execute("INSERT INTO items (name) VALUES ('kept')"))
        event = await db.write(lambda tx: tx.emit("task.queued", subject="t1"))
    async with Database.open(db_path) as db:
        names = await db.read(lambda c: [r[0] for r in c.execute("SELECT name FROM items")])
        assert names == ["kept"]
        assert await db.events_after(0) == [event]
        assert await db.last_seq() == event.seq


@pytest.mark.integration
async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    db_path = tmp_path / "crash.db"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = await trio.lowlevel.open_process(
        [sys.executable, str(script), str(db_path)], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    output = b""
    try:
        with trio.fail_after(60):
            while output.count(b"\n") < 2_000:
                chunk = await proc.stdout.receive_some()
                assert chunk, f"child exited early with {await proc.wait()}"
                output += chunk
    finally:
        proc.send_signal(signal.SIGKILL)
        with trio.fail_after(10):
            await proc.wait()
            while chunk := await proc.stdout.receive_some():
                output += chunk
    assert proc.returncode == -signal.SIGKILL
    acked = {int(line) for line in output.split(b"\n")[:-1]}  # the last piece may be a torn line
    assert len(acked) >= 2_000

    with sqlite3.connect(db_path) as conn:
        stored = {r[0] for r in conn.execute("SELECT id FROM items")}
        event_ids = {r[0] for r in conn.execute("SELECT json_extract(data, '$.id') FROM events")}
    assert acked <= stored
    assert acked <= event_ids
    async with Database.open(db_path) as db:  # and the file opens cleanly afterwards
        assert await db.last_seq() >= len(acked)
