"""Standard Webhooks signing (https://www.standardwebhooks.com/), so receivers can verify orch.

Headers: ``webhook-id`` (unique per message, stable across retries), ``webhook-timestamp`` (unix seconds)
and ``webhook-signature`` (space-separated ``<version>,<base64>`` entries). The signed content is
``{id}.{timestamp}.{body}``. Two schemes:

* symmetric ``v1``: HMAC-SHA256 keyed with the base64-decoded part of a ``whsec_...`` secret;
* asymmetric ``v1a``: Ed25519 (PyNaCl) with a ``whsk_...`` signing key (base64 of the 32-byte seed, or of
  the 64-byte seed+public key); receivers verify with the ``whpk_...`` public key from `public_key`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field

import nacl.signing


class SigningKeyError(ValueError):
    """A webhook secret that is malformed. The message never contains the secret."""


@dataclass(frozen=True, slots=True)
class WebhookSigner:
    """Signs outgoing webhook bodies with one ``whsec_`` or ``whsk_`` secret."""

    version: str  # "v1" (HMAC) or "v1a" (Ed25519)
    _key: bytes = field(repr=False)

    @classmethod
    def from_secret(cls, secret: str) -> WebhookSigner:
        """Parse ``whsec_<base64>`` (HMAC) or ``whsk_<base64>`` (Ed25519)."""
        if secret.startswith("whsec_"):
            key = _b64(secret[len("whsec_") :])
            if len(key) < 16:
                raise SigningKeyError("whsec_ secret must decode to at least 16 bytes")
            return cls("v1", key)
        if secret.startswith("whsk_"):
            key = _b64(secret[len("whsk_") :])
            if len(key) not in (32, 64):
                raise SigningKeyError("whsk_ key must decode to a 32-byte seed or a 64-byte key")
            return cls("v1a", key[:32])
        raise SigningKeyError("webhook secret must start with whsec_ (HMAC) or whsk_ (Ed25519)")

    def sign(self, msg_id: str, timestamp: int, body: bytes) -> str:
        """The ``webhook-signature`` header value for this message."""
        content = f"{msg_id}.{timestamp}.".encode() + body
        if self.version == "v1":
            digest = hmac.new(self._key, content, hashlib.sha256).digest()
        else:
            digest = nacl.signing.SigningKey(self._key).sign(content).signature
        return f"{self.version},{base64.b64encode(digest).decode()}"

    def headers(self, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """All three Standard Webhooks headers."""
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self.sign(msg_id, timestamp, body),
        }

    def public_key(self) -> str | None:
        """``whpk_<base64>`` for an Ed25519 signer (what receivers configure); None for HMAC."""
        if self.version != "v1a":
            return None
        verify_key = nacl.signing.SigningKey(self._key).verify_key
        return "whpk_" + base64.b64encode(bytes(verify_key)).decode()


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SigningKeyError("webhook secret is not valid base64") from None
