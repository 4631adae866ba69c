"""An independent Standard Webhooks verifier, written from the spec with hmac and PyNaCl directly."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

import nacl.exceptions
import nacl.signing


class VerificationFailed(Exception):
    pass


def verify(
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    secret: str | None = None,
    public_key: str | None = None,
    tolerance: float = 300,
) -> None:
    """Raise `VerificationFailed` unless one signature in ``webhook-signature`` is valid for the key."""
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(now - int(ts)) > tolerance:
        raise VerificationFailed("timestamp outside tolerance")
    signed = f"{msg_id}.{ts}.".encode() + body
    for entry in headers["webhook-signature"].split(" "):
        version, _, sig = entry.partition(",")
        if version == "v1" and secret is not None:
            key = base64.b64decode(secret.removeprefix("whsec_"))
            expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
            if hmac.compare_digest(expected, sig):
                return
        if version == "v1a" and public_key is not None:
            verify_key = nacl.signing.VerifyKey(base64.b64decode(public_key.removeprefix("whpk_")))
            try:
                verify_key.verify(signed, base64.b64decode(sig))
                return
            except nacl.exceptions.BadSignatureError:
                pass
    raise VerificationFailed("no valid signature")
