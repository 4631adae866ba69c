"""Webhook signature verification over the raw body, with timestamp tolerance and replay protection.

Schemes (chosen by which header is present, in this order; a request is judged by one scheme only):
- Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature` with `v1,<b64 HMAC>` entries
  (`whsec_` secrets) and `v1a,<b64 Ed25519>` entries (configured `whpk_` public keys only).
- GitHub: `X-Hub-Signature-256: sha256=<hex>`, deduplicated by `X-GitHub-Delivery`.
- orch/Stripe style: `X-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "{t}.{body}")>`.
Every malformed header is a 400, a bad or stale signature a 401, a replay a 409: never a 5xx.
Pure and synchronous; `now` is wall-clock unix seconds from the caller.

Replay keys are digests (`replay_key`) of the verified signature or delivery id, never a secret, so the
caller can persist those that `check` reports and `restore` them after a restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import re
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from actors.security.settings import WebhookSettings

_DIGITS = re.compile(r"[0-9]{1,12}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_DELIVERY = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# What senders almost always send: one t= and one v1=, in that order (parsed in one step).
_CANONICAL_SIGNATURE = re.compile(r"t=([0-9]{1,12}),v1=([0-9a-fA-F]{64})")

ReplayEntry = tuple[str, float]
"""A replay key (see `replay_key`) and the wall-clock time until which it is refused."""


def replay_key(kind: str, value: str) -> str:
    """The digest under which a verified signature or delivery id is remembered (safe to store)."""
    return hashlib.blake2b(f"{kind}:{value}".encode(), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class WebhookVerdict:
    """Accepted (status 200) or refused with a 4xx status and a reason safe to log and return."""

    ok: bool
    status: int
    reason: str
    scheme: str | None = None
    delivery_id: str | None = None


_SIGNATURE_OK = WebhookVerdict(True, 200, "ok", "signature", None)


class _Reject(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _bad(reason: str) -> _Reject:
    return _Reject(400, reason)


def _unauthorised(reason: str) -> _Reject:
    return _Reject(401, reason)


class ReplayCache:
    """Keys seen recently, each remembered until its own expiry; bounded (evicts the soonest to expire).

    Use str keys: with up to a million entries, GC-tracked keys (tuples) would make collections costly.
    """

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._expiry: dict[Hashable, float] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._counter = 0
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._expiry)

    def seen(self, key: Hashable, now: float) -> bool:
        """Was `key` added and not yet expired?"""
        expires = self._expiry.get(key)
        return expires is not None and expires > now

    def add(self, key: Hashable, expires_at: float, now: float) -> None:
        """Remember `key` until `expires_at`."""
        self._expire(now)
        while len(self._expiry) >= self._max and self._heap:
            self._pop()
        self._counter += 1
        self._expiry[key] = expires_at
        heapq.heappush(self._heap, (expires_at, self._counter, key))

    def restore(self, entries: Iterable[tuple[Hashable, float]], now: float) -> None:
        """Remember many keys at once (start-up); expired ones are skipped, the latest expiry wins."""
        for key, expires_at in entries:
            if expires_at > now and expires_at > self._expiry.get(key, now):
                self._counter += 1
                self._expiry[key] = expires_at
                self._heap.append((expires_at, self._counter, key))
        heapq.heapify(self._heap)
        self._expire(now)
        while len(self._expiry) > self._max and self._heap:
            self._pop()

    def _expire(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            self._pop()

    def _pop(self) -> None:
        expires, _, key = heapq.heappop(self._heap)
        if self._expiry.get(key) == expires:
            del self._expiry[key]


def decode_standard_secret(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (`whsec_<base64>`)."""
    return base64.b64decode(secret.removeprefix("whsec_"), validate=True)


def decode_standard_public_key(key: str) -> VerifyKey:
    """The Ed25519 verify key of a Standard Webhooks public key (`whpk_<base64>`)."""
    return VerifyKey(base64.b64decode(key.removeprefix("whpk_"), validate=True))


class WebhookVerifier:
    """Verifies incoming webhooks against the configured secrets and keys and remembers what it accepted."""

    def __init__(self, settings: WebhookSettings) -> None:
        self._s = settings
        # Keyed HMAC states made once: each delivery copies one instead of re-deriving the key pads.
        self._sig_macs = tuple(_keyed(s) for s in settings.signature_secrets)
        self._github_macs = tuple(_keyed(s) for s in settings.github_secrets)
        self._std_secrets = tuple(decode_standard_secret(s) for s in settings.standard_secrets)
        self._std_macs = tuple(_keyed(s) for s in self._std_secrets)
        self._std_keys = tuple(decode_standard_public_key(k) for k in settings.standard_public_keys)
        self.replays = ReplayCache(settings.replay_cache_size)
        self._fresh: list[ReplayEntry] = []

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> WebhookVerdict:
        """Judge one delivery. `headers` may use any case; `body` must be the raw bytes received."""
        return self.check(headers, body, now)[0]

    def check(
        self, headers: Mapping[str, str], body: bytes, now: float
    ) -> tuple[WebhookVerdict, tuple[ReplayEntry, ...]]:
        """`verify`, plus the replay keys this delivery added (to persist before acknowledging it)."""
        self._fresh = []
        verdict = self._judge(headers, body, now)
        fresh, self._fresh = tuple(self._fresh), []
        return verdict, fresh

    def restore(self, entries: Iterable[ReplayEntry], now: float) -> None:
        """Remember replay keys persisted by an earlier run (only unexpired ones are kept)."""
        self.replays.restore(entries, now)

    def _judge(self, headers: Mapping[str, str], body: bytes, now: float) -> WebhookVerdict:
        h = {k.lower(): v for k, v in headers.items()}
        scheme = "standard" if "webhook-signature" in h else None
        scheme = scheme or ("github" if "x-hub-signature-256" in h else None)
        scheme = scheme or ("signature" if "x-signature" in h else None)
        if scheme is None:
            return WebhookVerdict(False, 401, "missing signature header")
        delivery: str | None = None
        try:
            if scheme == "standard":
                delivery = self._standard(h, body, now)
            elif scheme == "github":
                delivery = self._github(h, body, now)
            else:
                delivery = self._signature(h["x-signature"], body, now)
        except _Reject as r:
            return WebhookVerdict(False, r.status, r.reason, scheme, delivery)
        if scheme == "signature" and delivery is None:  # no delivery id: one verdict fits every acceptance
            return _SIGNATURE_OK
        return WebhookVerdict(True, 200, "ok", scheme, delivery)

    # -- X-Signature: t=...,v1=...
    def _signature(self, value: str, body: bytes, now: float) -> str | None:
        if not self._s.signature_secrets:
            raise _unauthorised("signature scheme not configured")
        stamps, sigs = _parse_signature_header(value)
        t = self._timestamp(stamps[0], now)
        prefix = f"{t}.".encode()
        expected = [_mac(m, prefix, body).hexdigest() for m in self._sig_macs]
        match = _first_match(expected, [s.lower() for s in sigs])
        if match is None:
            raise _unauthorised("signature mismatch")
        self._once(replay_key("sig", match), t + self._s.tolerance, now)
        return None

    # -- X-Hub-Signature-256: sha256=...
    def _github(self, h: Mapping[str, str], body: bytes, now: float) -> str:
        if not self._s.github_secrets:
            raise _unauthorised("github scheme not configured")
        algo, _, digest = h["x-hub-signature-256"].strip().partition("=")
        if algo != "sha256" or not _HEX64.fullmatch(digest):
            raise _bad("X-Hub-Signature-256 must be sha256=<64 hex digits>")
        delivery = h.get("x-github-delivery", "").strip()
        if not _DELIVERY.fullmatch(delivery):
            raise _bad("missing or malformed X-GitHub-Delivery")
        expected = [_mac(m, b"", body).hexdigest() for m in self._github_macs]
        match = _first_match(expected, [digest.lower()])
        if match is None:
            raise _unauthorised("signature mismatch")
        until = now + self._s.github_delivery_ttl
        delivery_key = replay_key("gh", delivery)
        if self.replays.seen(delivery_key, now):
            raise _Reject(409, "delivery already processed")
        self._once(replay_key("gh-sig", match), until, now)
        self._remember(delivery_key, until, now)
        return delivery

    # -- Standard Webhooks
    def _standard(self, h: Mapping[str, str], body: bytes, now: float) -> str:
        if not (self._std_secrets or self._std_keys):
            raise _unauthorised("standard webhooks scheme not configured")
        msg_id = h.get("webhook-id", "").strip()
        if not _DELIVERY.fullmatch(msg_id):
            raise _bad("missing or malformed webhook-id")
        t = self._timestamp(h.get("webhook-timestamp", "").strip(), now)
        v1, v1a = _parse_standard_signatures(h["webhook-signature"])
        signed = f"{msg_id}.{t}.".encode() + body
        if not (self._std_v1_ok(signed, v1) or self._std_v1a_ok(signed, v1a)):
            raise _unauthorised("signature mismatch")
        id_key = replay_key("std", msg_id)
        if self.replays.seen(id_key, now):
            raise _Reject(409, "webhook-id already processed")
        self._remember(id_key, t + self._s.tolerance, now)
        return msg_id

    def _std_v1_ok(self, signed: bytes, sigs: list[bytes]) -> bool:
        expected = [_mac(m, b"", signed).digest() for m in self._std_macs]
        return any(hmac.compare_digest(e, s) for e in expected for s in sigs)

    def _std_v1a_ok(self, signed: bytes, sigs: list[bytes]) -> bool:
        for key in self._std_keys:
            for sig in sigs:
                try:
                    key.verify(signed, sig)
                    return True
                except BadSignatureError:
                    continue
        return False

    def _timestamp(self, raw: str, now: float) -> int:
        if not _DIGITS.fullmatch(raw):
            raise _bad("timestamp must be a non-negative integer of unix seconds")
        t = int(raw)
        if abs(now - t) > self._s.tolerance:
            raise _unauthorised("timestamp outside tolerance")
        return t

    def _once(self, key: str, expires_at: float, now: float) -> None:
        if self.replays.seen(key, now):
            raise _Reject(409, "replayed signature")
        self._remember(key, expires_at, now)

    def _remember(self, key: str, expires_at: float, now: float) -> None:
        self.replays.add(key, expires_at, now)
        self._fresh.append((key, expires_at))


def _keyed(secret: bytes) -> hmac.HMAC:
    return hmac.new(secret, digestmod=hashlib.sha256)


def _mac(keyed: hmac.HMAC, prefix: bytes, body: bytes) -> hmac.HMAC:
    """HMAC-SHA256 of prefix + body under `keyed`'s key, without concatenating (copying) the body."""
    mac = keyed.copy()
    if prefix:
        mac.update(prefix)
    mac.update(body)
    return mac


def _first_match(expected: list[str], given: list[str]) -> str | None:
    found: str | None = None
    for e in expected:
        for g in given:
            if hmac.compare_digest(e, g):
                found = g
    return found


def _parse_signature_header(value: str) -> tuple[list[str], list[str]]:
    canonical = _CANONICAL_SIGNATURE.fullmatch(value)
    if canonical is not None:
        return [canonical[1]], [canonical[2]]
    stamps: list[str] = []
    sigs: list[str] = []
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            raise _bad("X-Signature entries must be key=value")
        if key == "t":
            stamps.append(val)
        elif key == "v1":
            if not _HEX64.fullmatch(val):
                raise _bad("v1 signature must be 64 hex digits")
            sigs.append(val)
    if len(stamps) != 1:
        raise _bad("X-Signature needs exactly one t=")
    if not sigs:
        raise _bad("X-Signature has no v1 signature")
    return stamps, sigs


def _parse_standard_signatures(value: str) -> tuple[list[bytes], list[bytes]]:
    v1: list[bytes] = []
    v1a: list[bytes] = []
    for entry in value.split():
        version, sep, b64 = entry.partition(",")
        if not sep:
            raise _bad("webhook-signature entries must be <version>,<base64>")
        if version not in ("v1", "v1a"):
            continue
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise _bad("webhook-signature is not valid base64") from None
        if len(raw) != (32 if version == "v1" else 64):
            raise _bad(f"webhook-signature {version} has the wrong length")
        (v1 if version == "v1" else v1a).append(raw)
    if not (v1 or v1a):
        raise _bad("webhook-signature has no v1 or v1a signature")
    return v1, v1a
