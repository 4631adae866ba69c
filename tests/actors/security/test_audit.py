"""Hash chain: verification detects edits, deletions, reordering; scrubbing keeps secrets out."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from actors.security.audit import GENESIS, AuditRow, canonical_json, chain_hash, scrub, utc_iso, verify_chain


def build(n: int, key: bytes | None = None) -> list[AuditRow]:
    rows: list[AuditRow] = []
    prev = GENESIS
    for i in range(1, n + 1):
        at = utc_iso(1_800_000_000 + i)
        data = canonical_json({"n": i})
        h = chain_hash(prev, at, "login_failed", f"user{i}", "1.2.3.4", data, key=key)
        rows.append(AuditRow(i, at, "login_failed", f"user{i}", "1.2.3.4", data, prev, h))
        prev = h
    return rows


def test_intact_chain_verifies_and_reports_its_head() -> None:
    rows = build(5)
    result = verify_chain(rows)
    assert (result.ok, result.checked, result.head) == (True, 5, rows[-1].hash)


def test_chain_hash_is_sha256_of_the_canonical_link() -> None:
    at, data = "2026-01-01T00:00:00.000Z", '{"a":1}'
    body = json.dumps(
        {"at": at, "client": None, "data": data, "prev": GENESIS, "subject": "bob", "type": "x"},
        separators=(",", ":"),
        sort_keys=True,
    )
    assert chain_hash(GENESIS, at, "x", "bob", None, data) == hashlib.sha256(body.encode()).hexdigest()


def test_edited_row_is_detected() -> None:
    rows = build(5)
    rows[2] = replace(rows[2], subject="mallory")
    result = verify_chain(rows)
    assert (result.ok, result.first_bad_id, result.checked) == (False, 3, 2)


def test_deleted_row_is_detected() -> None:
    rows = build(5)
    del rows[1]
    assert verify_chain(rows).first_bad_id == 3


def test_reordered_rows_are_detected() -> None:
    rows = build(4)
    rows[1], rows[2] = rows[2], rows[1]
    assert not verify_chain(rows).ok


def test_recomputed_chain_without_the_key_is_detected() -> None:
    key = b"audit-key-0123456789abcdef012345"
    forged = build(3, key=None)  # an attacker rebuilt the chain with plain SHA-256
    assert verify_chain(build(3, key=key), key=key).ok
    assert not verify_chain(forged, key=key).ok


def test_scrub_removes_secret_looking_fields_and_jwts() -> None:
    data = {
        "user": "alice",
        "password": "hunter22",
        "new_password": "x",
        "refresh_token": "abc",
        "Authorization": "Bearer x",
        "nested": {"client_secret": "s", "ok": 1},
        "note": "got eyJhbGciOi.eyJzdWIi.c2ln from the client",
        "token_type": "access",
        "reason": "bad signature",
    }
    out = scrub(data)
    assert out["user"] == "alice" and out["reason"] == "bad signature" and out["token_type"] == "access"
    for key in ("password", "new_password", "refresh_token", "Authorization", "note"):
        assert out[key] == "[redacted]"
    assert out["nested"] == {"client_secret": "[redacted]", "ok": 1}


@pytest.mark.parametrize(
    ("ts", "iso"), [(0.0, "1970-01-01T00:00:00.000Z"), (1.2345, "1970-01-01T00:00:01.234Z")]
)
def test_timestamps_are_utc_iso_with_milliseconds(ts: float, iso: str) -> None:
    assert utc_iso(ts) == iso
