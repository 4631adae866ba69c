"""The audit trail's hash chain: canonical row encoding, chaining, scrubbing and verification.

Each row's hash covers its content and the previous row's hash, so editing, deleting or reordering a row
breaks every later link. With an `audit_key` the links are HMACs: someone who can write the database file
but does not hold the key cannot recompute the chain after tampering. (Truncating the newest rows is only
detectable against an externally kept head hash: `verify_chain` returns it for that purpose.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"pass|secret|token|authori[sz]ation|cookie|signature|credential|hash", re.I)
_LOOKS_LIKE_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_ALLOWED_KEYS = frozenset({"token_type", "token_kind"})  # names that match the pattern but hold no secret


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One stored `security_events` row."""

    id: int
    at: str  # ISO 8601 UTC with milliseconds, e.g. 2026-11-27T03:41:00.123Z
    type: str
    subject: str | None
    client: str | None
    data: str  # canonical JSON
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """Result of checking the chain: ok, rows checked, the head hash, and the first broken row if any."""

    ok: bool
    checked: int
    head: str
    first_bad_id: int | None = None
    reason: str = ""


def utc_iso(ts: float) -> str:
    """Unix seconds as ISO 8601 UTC with millisecond precision and a Z suffix."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def canonical_json(data: Mapping[str, Any]) -> str:
    """Deterministic JSON (sorted keys, no spaces) so the hash input is reproducible."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def scrub(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `data` with anything that could be a password, token or secret replaced by a marker."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if _SECRET_KEY.search(key) and key not in _ALLOWED_KEYS:
            out[key] = REDACTED
        elif isinstance(value, Mapping):
            out[key] = scrub(value)
        elif isinstance(value, str) and _LOOKS_LIKE_JWT.search(value):
            out[key] = REDACTED
        else:
            out[key] = value
    return out


def chain_hash(
    prev_hash: str,
    at: str,
    type: str,
    subject: str | None,
    client: str | None,
    data: str,
    *,
    key: bytes | None = None,
) -> str:
    """The link hash of a row: SHA-256 (or HMAC-SHA256 with `key`) over the previous hash and the content."""
    body = canonical_json(
        {"prev": prev_hash, "at": at, "type": type, "subject": subject, "client": client, "data": data}
    ).encode()
    if key is not None:
        return hmac.new(key, body, hashlib.sha256).hexdigest()
    return hashlib.sha256(body).hexdigest()


class ChainVerifier:
    """Checks the chain incrementally, chunk by chunk, so a long trail needs no more memory than a chunk."""

    def __init__(self, *, key: bytes | None = None) -> None:
        self._key = key
        self._prev = GENESIS
        self._last_id = 0
        self._checked = 0
        self._broken: AuditVerification | None = None

    def feed(self, rows: Iterable[AuditRow]) -> bool:
        """Check the next rows (in id order); False once a broken link was found."""
        if self._broken is not None:
            return False
        for row in rows:
            reason = self._problem(row)
            if reason:
                self._broken = AuditVerification(False, self._checked, self._prev, row.id, reason)
                return False
            self._prev, self._last_id = row.hash, row.id
            self._checked += 1
        return True

    def result(self) -> AuditVerification:
        """The verdict so far."""
        return self._broken or AuditVerification(True, self._checked, self._prev)

    def _problem(self, row: AuditRow) -> str:
        if row.id <= self._last_id:
            return "rows out of order"
        if row.prev_hash != self._prev:
            return "previous-hash link broken"
        expected = chain_hash(self._prev, row.at, row.type, row.subject, row.client, row.data, key=self._key)
        if not hmac.compare_digest(expected, row.hash):
            return "row content does not match its hash"
        return ""


def verify_chain(rows: Iterable[AuditRow], *, key: bytes | None = None) -> AuditVerification:
    """Walk the rows in id order and check every link; stops at the first broken one."""
    verifier = ChainVerifier(key=key)
    verifier.feed(rows)
    return verifier.result()
