"""SQL for alerts, silences, recovery actions and isolated cores in metrics.db (runs in storage threads)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from actors.notifier.messages import Severity

from .messages import Alert, AlertState, RecoveryRecord, SilenceInfo

SCHEMA_V1 = """
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, rule TEXT NOT NULL, series TEXT NOT NULL,
    labels TEXT NOT NULL, state TEXT NOT NULL, severity TEXT NOT NULL, summary TEXT NOT NULL,
    value REAL NOT NULL, active_at REAL NOT NULL, fired_at REAL, resolved_at REAL, last_notified_at REAL,
    extra TEXT NOT NULL);
CREATE UNIQUE INDEX alerts_open ON alerts (fingerprint) WHERE state != 'resolved';
CREATE INDEX alerts_resolved ON alerts (resolved_at) WHERE state = 'resolved';
CREATE TABLE silences (
    id TEXT PRIMARY KEY, matchers TEXT NOT NULL, starts_at REAL NOT NULL, ends_at REAL NOT NULL,
    created_by TEXT NOT NULL, comment TEXT NOT NULL);
CREATE TABLE recoveries (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, policy TEXT NOT NULL, action TEXT NOT NULL,
    target TEXT NOT NULL, alert TEXT, outcome TEXT NOT NULL, attempt INTEGER NOT NULL, detail TEXT NOT NULL);
CREATE INDEX recoveries_target ON recoveries (target, id);
CREATE TABLE isolations (core TEXT PRIMARY KEY, since REAL NOT NULL, detail TEXT NOT NULL);
"""

_ALERT_COLUMNS = (
    "fingerprint, rule, series, labels, state, severity, summary, value, active_at, fired_at, resolved_at,"
    " last_notified_at, extra"
)


def save_alerts(conn: sqlite3.Connection, alerts: Sequence[Alert], dropped: Sequence[str]) -> None:
    """Upsert each alert's open episode (a resolve closes it); delete dropped pending episodes."""
    for alert in alerts:
        row = _alert_row(alert)
        cur = conn.execute(
            f"UPDATE alerts SET ({_ALERT_COLUMNS}) = ({', '.join('?' * len(row))})"
            " WHERE fingerprint = ? AND state != 'resolved'",
            (*row, alert.fingerprint),
        )
        if cur.rowcount == 0:
            conn.execute(f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES ({', '.join('?' * len(row))})", row)
    conn.executemany(
        "DELETE FROM alerts WHERE fingerprint = ? AND state = 'pending'", [(fp,) for fp in dropped]
    )


def load_alerts(
    conn: sqlite3.Connection, state: AlertState | None, limit: int, *, open_only: bool
) -> list[Alert]:
    """Alerts newest first (by activation)."""
    where, args = "1", []
    if open_only:
        where = "state != 'resolved'"
    elif state is not None:
        where, args = "state = ?", [state.value]
    rows = conn.execute(
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {where} ORDER BY active_at DESC, id DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [_alert_from_row(r) for r in rows]


def _alert_row(a: Alert) -> tuple[Any, ...]:
    extra = json.dumps({"actions": list(a.actions), "channels": a.channels, "group_key": a.group_key})
    return (
        a.fingerprint, a.rule, a.series, json.dumps(dict(a.labels)), a.state.value, a.severity.value,
        a.summary, a.value, a.active_at, a.fired_at, a.resolved_at, a.last_notified_at, extra,
    )  # fmt: skip


def _alert_from_row(r: tuple[Any, ...]) -> Alert:
    extra = json.loads(r[12])
    channels = extra["channels"]
    return Alert(
        fingerprint=r[0], rule=r[1], series=r[2], labels=json.loads(r[3]), state=AlertState(r[4]),
        severity=Severity(r[5]), summary=r[6], value=r[7], active_at=r[8], fired_at=r[9],
        resolved_at=r[10], last_notified_at=r[11], actions=tuple(extra["actions"]),
        channels=None if channels is None else tuple(channels), group_key=extra["group_key"],
    )  # fmt: skip


def insert_silence(conn: sqlite3.Connection, s: SilenceInfo) -> None:
    """Store a silence."""
    conn.execute(
        "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (s.id, json.dumps(dict(s.matchers)), s.starts_at, s.ends_at, s.created_by, s.comment),
    )


def expire_silence(conn: sqlite3.Connection, silence_id: str, now: float) -> bool:
    """Set an active silence's end to ``now``."""
    cur = conn.execute("UPDATE silences SET ends_at = ? WHERE id = ? AND ends_at > ?", (now, silence_id, now))
    return cur.rowcount > 0


def load_silences(conn: sqlite3.Connection) -> list[SilenceInfo]:
    """All stored silences, newest first."""
    rows = conn.execute(
        "SELECT id, matchers, starts_at, ends_at, created_by, comment FROM silences ORDER BY starts_at DESC"
    ).fetchall()
    return [SilenceInfo(r[0], json.loads(r[1]), r[2], r[3], r[4], r[5]) for r in rows]


def insert_recovery(conn: sqlite3.Connection, r: RecoveryRecord) -> RecoveryRecord:
    """Append a recovery record; returns it with its id."""
    cur = conn.execute(
        "INSERT INTO recoveries (ts, policy, action, target, alert, outcome, attempt, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (r.ts, r.policy, r.action, r.target, r.alert, r.outcome, r.attempt, r.detail),
    )
    return RecoveryRecord(int(cur.lastrowid or 0), *_recovery_fields(r))


def _recovery_fields(r: RecoveryRecord) -> tuple[Any, ...]:
    return (r.ts, r.policy, r.action, r.target, r.alert, r.outcome, r.attempt, r.detail)


def load_recoveries(conn: sqlite3.Connection, target: str | None, limit: int) -> list[RecoveryRecord]:
    """Recovery records newest first."""
    cols = "id, ts, policy, action, target, alert, outcome, attempt, detail"
    if target is None:
        rows = conn.execute(f"SELECT {cols} FROM recoveries ORDER BY id DESC LIMIT ?", (limit,))
    else:
        sql = f"SELECT {cols} FROM recoveries WHERE target = ? ORDER BY id DESC LIMIT ?"
        rows = conn.execute(sql, (target, limit))
    return [RecoveryRecord(*r) for r in rows.fetchall()]


def set_isolated(conn: sqlite3.Connection, core: str, since: float | None, detail: str) -> None:
    """Mark a core isolated (since) or not (None)."""
    if since is None:
        conn.execute("DELETE FROM isolations WHERE core = ?", (core,))
    else:
        conn.execute(
            "INSERT OR REPLACE INTO isolations (core, since, detail) VALUES (?, ?, ?)", (core, since, detail)
        )


def load_isolated(conn: sqlite3.Connection) -> dict[str, float]:
    """Isolated cores -> since."""
    return {str(c): float(s) for c, s in conn.execute("SELECT core, since FROM isolations")}


def expire(conn: sqlite3.Connection, horizon: float) -> None:
    """Forget resolved alerts, ended silences and recovery records older than ``horizon``."""
    conn.execute("DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < ?", (horizon,))
    conn.execute("DELETE FROM silences WHERE ends_at < ?", (horizon,))
    conn.execute("DELETE FROM recoveries WHERE ts < ?", (horizon,))
