"""JWT issue and verification (PyJWT), following RFC 8725.

- The algorithm comes from the configured key (chosen by `kid`), never from the token header: a header
  whose `alg` differs from its key's (`none` in any case, HS256 over an EdDSA public key, RS256, ...) is
  refused before any signature work.
- Required claims: sub, role, typ, iat, nbf, exp, iss, aud, jti; `typ` must be one the caller expects.
- Times are checked here against the caller's `now` (with leeway), not by PyJWT's wall clock, so tests use
  fake time and the actor can re-check cached tokens cheaply.
- Retired keys (`verify_until`) keep verifying until their grace period ends.
Revocation (by jti, by "issued before", refresh families) is state, and lives in the actor.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt

from actors.security.roles import Role
from actors.security.settings import JwtKey, SecuritySettings

MAX_TOKEN_CHARS = 8192
_REQUIRED = ["sub", "role", "typ", "iat", "nbf", "exp", "iss", "aud", "jti"]


class TokenType(StrEnum):
    """What a token is for: short-lived user access, refresh, or a long-lived system (worker) token."""

    ACCESS = "access"
    REFRESH = "refresh"
    SYSTEM = "system"


class TokenInvalid(Exception):
    """The token is not acceptable. `reason` is short, stable and safe to log (never the token itself)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The verified content of a token."""

    sub: str
    role: Role
    typ: TokenType
    jti: str
    iat: float
    nbf: float
    exp: float
    kid: str
    family: str | None = None  # refresh tokens: the rotation family


def now_ms(now: float) -> float:
    """`now` floored to the millisecond: the `iat` resolution, so "issued before T" compares exactly."""
    return math.floor(now * 1000) / 1000


@dataclass(frozen=True, slots=True)
class _Key:
    config: JwtKey
    signing: Any
    verifying: Any


def _load_key(key: JwtKey) -> _Key:
    if key.alg == "HS256":
        return _Key(key, key.secret, key.secret)
    algo = jwt.get_algorithm_by_name("EdDSA")
    private = algo.prepare_key(key.private_key_pem) if key.private_key_pem else None
    public = algo.prepare_key(key.public_key_pem) if key.public_key_pem else None
    return _Key(key, private, public)


class TokenCodec:
    """Issues and verifies tokens for one configuration. Holds no revocation state."""

    def __init__(self, settings: SecuritySettings) -> None:
        self._keys: Mapping[str, _Key] = {k.kid: _load_key(k) for k in settings.jwt_keys}
        self._active = self._keys[settings.active_kid]
        self._issuer = settings.issuer
        self._audience = settings.audience
        self._leeway = settings.leeway

    def issue(
        self,
        *,
        sub: str,
        role: Role,
        typ: TokenType,
        ttl: float,
        now: float,
        family: str | None = None,
        jti: str | None = None,
        iat_floor: float = 0.0,
    ) -> tuple[str, TokenClaims]:
        """Sign a new token with the active key; returns the compact JWS and its claims.

        `iat_floor`: the subject's "tokens issued before this are revoked" point, so a token issued right
        after a revocation (in the same millisecond) is not caught by it.
        """
        iat = max(now_ms(now), iat_floor)
        claims = TokenClaims(
            sub=sub,
            role=role,
            typ=typ,
            jti=jti or secrets.token_urlsafe(16),
            iat=iat,
            nbf=iat,
            exp=iat + ttl,
            kid=self._active.config.kid,
            family=family,
        )
        payload: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": sub,
            "role": role.value,
            "typ": typ.value,
            "jti": claims.jti,
            "iat": iat,
            "nbf": iat,
            "exp": claims.exp,
        }
        if family is not None:
            payload["fam"] = family
        token = jwt.encode(
            payload,
            self._active.signing,
            algorithm=self._active.config.alg,
            headers={"kid": claims.kid, "typ": "JWT"},
        )
        return token, claims

    def verify_signature(self, token: str, *, now: float) -> TokenClaims:
        """Signature, key, issuer, audience and claim shape; NOT times or typ (see `check`)."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise TokenInvalid("malformed token")
        key = self._key_for(token, now)
        try:
            payload = jwt.decode(
                token,
                key.verifying,
                algorithms=[key.config.alg],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": _REQUIRED, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise TokenInvalid(f"missing claim {exc.claim}") from None
        except jwt.InvalidAudienceError:
            raise TokenInvalid("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise TokenInvalid("wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise TokenInvalid("bad signature") from None
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            # Anything else a hostile token provokes is "malformed", never a crash of the actor.
            raise TokenInvalid("malformed token") from None
        return _claims_from(payload, key.config.kid)

    def check(self, claims: TokenClaims, *, now: float, expected: Collection[TokenType]) -> None:
        """Times (with leeway), typ, and the key's grace period; raise TokenInvalid on any failure."""
        if claims.typ not in expected:
            raise TokenInvalid("wrong token type")
        if now > claims.exp + self._leeway:
            raise TokenInvalid("expired")
        if claims.nbf > now + self._leeway:
            raise TokenInvalid("not yet valid")
        if claims.iat > now + self._leeway:
            raise TokenInvalid("issued in the future")
        self._check_key_alive(claims.kid, now)

    def verify(self, token: str, *, now: float, expected: Collection[TokenType]) -> TokenClaims:
        """Full verification: `verify_signature` then `check`."""
        claims = self.verify_signature(token, now=now)
        self.check(claims, now=now, expected=expected)
        return claims

    def _key_for(self, token: str, now: float) -> _Key:
        header = _peek_header(token)
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenInvalid("unknown key id")
        if header.get("alg") != key.config.alg:
            raise TokenInvalid("algorithm not allowed")
        if key.verifying is None:
            raise TokenInvalid("unknown key id")
        self._check_key_alive(key.config.kid, now)
        return key

    def _check_key_alive(self, kid: str, now: float) -> None:
        until = self._keys[kid].config.verify_until
        if until is not None and now > until:
            raise TokenInvalid("key retired")


def _peek_header(token: str) -> dict[str, Any]:
    # Only to pick the key: a lenient, cheap parse (PyJWT's own strict parse costs ~100 us and would run
    # twice). Safe because jwt.decode then re-parses strictly, enforces the key's algorithm, and the
    # signature must verify with the key chosen here.
    head = token.partition(".")[0]
    if not head or len(head) > 1024:
        raise TokenInvalid("malformed token")
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, TypeError):
        raise TokenInvalid("malformed token") from None
    if not isinstance(header, dict):
        raise TokenInvalid("malformed token")
    return header


def _claims_from(payload: Mapping[str, Any], kid: str) -> TokenClaims:
    try:
        role = Role(payload["role"])
        typ = TokenType(payload["typ"])
    except (ValueError, TypeError):
        raise TokenInvalid("bad role or typ claim") from None
    numbers = [payload["iat"], payload["nbf"], payload["exp"]]
    # json.loads accepts NaN and Infinity: an `exp` of NaN would compare as never expired.
    if any(isinstance(n, bool) or not isinstance(n, int | float) or not math.isfinite(n) for n in numbers):
        raise TokenInvalid("bad time claim")
    sub, jti, fam = payload["sub"], payload["jti"], payload.get("fam")
    if not isinstance(sub, str) or not sub or not isinstance(jti, str) or not jti:
        raise TokenInvalid("bad sub or jti claim")
    if fam is not None and not isinstance(fam, str):
        raise TokenInvalid("bad family claim")
    return TokenClaims(
        sub=sub,
        role=role,
        typ=typ,
        jti=jti,
        iat=float(payload["iat"]),
        nbf=float(payload["nbf"]),
        exp=float(payload["exp"]),
        kid=kid,
        family=fam,
    )
