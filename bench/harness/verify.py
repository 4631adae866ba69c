"""Correctness checks run after the load: every acknowledged item is in the node's store, every
subscriber got every event exactly once and in order."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.harness.report import Check

__all__ = ["StreamDigest", "check_acks_stored", "check_streams_complete", "stored_values"]


def stored_values(db_path: Path, sql: str, params: Iterable[object] = ()) -> list[str]:
    """The first column of `sql` over the node's SQLite file, opened read-only (run it after the node
    stopped, so what is checked is what survived a graceful shutdown)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return [str(row[0]) for row in conn.execute(sql, tuple(params))]
    finally:
        conn.close()


def check_acks_stored(name: str, acked: Iterable[str], stored: Iterable[str]) -> Check:
    """Every acknowledged id is stored, and no id was acknowledged twice."""
    acks = list(acked)
    present = set(stored)
    missing = [a for a in acks if a not in present]
    dupes = [a for a, n in Counter(acks).items() if n > 1]
    ok = bool(acks) and not missing and not dupes
    detail = f"{len(acks):,} acknowledged, {len(acks) - len(missing):,} in the store"
    if missing:
        detail += f"; missing e.g. {missing[:3]}"
    if dupes:
        detail += f"; {len(dupes)} acknowledged twice, e.g. {dupes[:3]}"
    if not acks:
        detail = "nothing was acknowledged"
    return Check(name, ok, detail)


@dataclass(slots=True)
class StreamDigest:
    """What one subscriber received, compactly: count, first/last seq, sum of seqs, and whether seqs
    were strictly increasing. Equal count and sum with strictly increasing seqs means the same set."""

    count: int = 0
    first: int = -1
    last: int = -1
    total: int = 0
    ordered: bool = True

    def add(self, seq: int) -> None:
        """Count one more event."""
        if self.count == 0:
            self.first = seq
        self.ordered = self.ordered and seq > self.last
        self.count += 1
        self.last = seq
        self.total += seq


def check_streams_complete(name: str, streams: Mapping[str, StreamDigest], expected: Iterable[int]) -> Check:
    """Each stream got exactly the `expected` seqs, once each, in increasing order."""
    want = sorted(set(expected))
    if not want:
        return Check(name, False, "no events were expected: nothing was published?")
    target = StreamDigest(len(want), want[0], want[-1], sum(want), True)
    bad = {key: d for key, d in streams.items() if d != target}
    detail = f"{len(streams):,} subscribers x {len(want):,} events"
    if bad:
        key, digest = next(iter(bad.items()))
        short = sum(1 for d in bad.values() if d.count < target.count)
        disorder = sum(1 for d in bad.values() if not d.ordered)
        detail += f"; {len(bad):,} wrong ({short} short, {disorder} out of order), e.g. {key}: {digest}"
    return Check(name, not bad and bool(streams), detail)
