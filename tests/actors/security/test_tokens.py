"""JWT issue/verify, including the RFC 8725 attacks. Forged tokens are built by hand (base64url + hmac /
PyNaCl), not by orch's codec."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from actors.security.roles import Role
from actors.security.settings import JwtKey, SecuritySettings
from actors.security.tokens import TokenCodec, TokenInvalid, TokenType

SECRET = b"k" * 16 + b"0123456789abcdef"
NOW = 1_800_000_000.0
ACCESS = {TokenType.ACCESS}


def settings(**kw: Any) -> SecuritySettings:
    base = SecuritySettings(jwt_keys=(JwtKey("k1", "HS256", secret=SECRET),), active_kid="k1")
    return replace(base, **kw)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**over: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "iss": "orch",
        "aud": "orch-api",
        "sub": "alice",
        "role": "admin",
        "typ": "access",
        "jti": "j-1",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 900,
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def forge(header: dict[str, Any], payload: dict[str, Any], key: bytes | None = SECRET) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    sig = b"" if key is None else hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def reason(codec: TokenCodec, token: str, *, now: float = NOW, expected: set[TokenType] = ACCESS) -> str:
    with pytest.raises(TokenInvalid) as info:
        codec.verify(token, now=now, expected=expected)
    return info.value.reason


def test_issued_token_round_trips_with_all_claims() -> None:
    codec = TokenCodec(settings())
    token, issued = codec.issue(sub="alice", role=Role.OPERATOR, typ=TokenType.ACCESS, ttl=900, now=NOW)
    got = codec.verify(token, now=NOW + 1, expected=ACCESS)
    assert got == issued
    assert (got.sub, got.role, got.typ, got.kid, got.exp - got.iat) == (
        "alice",
        Role.OPERATOR,
        "access",
        "k1",
        900,
    )


def test_hand_signed_hs256_token_is_accepted() -> None:
    # the independent construction is right, so the rejections below are about the attack, not the helper
    token = forge({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims())
    assert TokenCodec(settings()).verify(token, now=NOW, expected=ACCESS).sub == "alice"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_case_is_rejected(alg: str) -> None:
    token = forge({"alg": alg, "typ": "JWT", "kid": "k1"}, claims(), key=None)
    assert reason(TokenCodec(settings()), token) == "algorithm not allowed"


@pytest.mark.parametrize("alg", ["HS384", "HS512", "RS256", "ES256", "PS256"])
def test_algorithm_off_the_list_is_rejected(alg: str) -> None:
    token = forge({"alg": alg, "typ": "JWT", "kid": "k1"}, claims())
    assert reason(TokenCodec(settings()), token) == "algorithm not allowed"


def ed25519_key(kid: str, **kw: Any) -> tuple[JwtKey, Ed25519PrivateKey]:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return JwtKey(kid, "EdDSA", private_key_pem=pem, public_key_pem=pub, **kw), private


def test_hs256_signed_with_the_eddsa_public_key_is_rejected() -> None:
    key, _ = ed25519_key("ed1")
    codec = TokenCodec(settings(jwt_keys=(key,), active_kid="ed1"))
    assert key.public_key_pem is not None
    token = forge({"alg": "HS256", "typ": "JWT", "kid": "ed1"}, claims(), key=key.public_key_pem)
    assert reason(codec, token) == "algorithm not allowed"


def test_eddsa_token_verifies_and_a_hand_made_ed25519_signature_too() -> None:
    key, private = ed25519_key("ed1")
    codec = TokenCodec(settings(jwt_keys=(key,), active_kid="ed1"))
    token, _ = codec.issue(sub="w1", role=Role.SYSTEM, typ=TokenType.SYSTEM, ttl=60, now=NOW)
    assert codec.verify(token, now=NOW, expected={TokenType.SYSTEM}).sub == "w1"
    header = b64(json.dumps({"alg": "EdDSA", "kid": "ed1"}).encode())
    body = b64(json.dumps(claims()).encode())
    sig = b64(private.sign(f"{header}.{body}".encode()))
    assert codec.verify(f"{header}.{body}.{sig}", now=NOW, expected=ACCESS).sub == "alice"
    tampered = f"{header}.{b64(json.dumps(claims(role='admin', sub='mallory')).encode())}.{sig}"
    assert reason(codec, tampered) == "bad signature"


@pytest.mark.parametrize("missing", ["aud", "exp", "iss", "nbf", "iat", "jti", "sub", "typ", "role"])
def test_token_missing_a_required_claim_is_rejected(missing: str) -> None:
    token = forge({"alg": "HS256", "kid": "k1"}, claims(**{missing: None}))
    assert reason(TokenCodec(settings()), token) == f"missing claim {missing}"


def test_wrong_audience_and_issuer_are_rejected() -> None:
    codec = TokenCodec(settings())
    assert reason(codec, forge({"alg": "HS256", "kid": "k1"}, claims(aud="other"))) == "wrong audience"
    assert reason(codec, forge({"alg": "HS256", "kid": "k1"}, claims(iss="evil"))) == "wrong issuer"


def test_wrong_typ_is_rejected() -> None:
    codec = TokenCodec(settings())
    refresh, _ = codec.issue(sub="a", role=Role.VIEWER, typ=TokenType.REFRESH, ttl=60, now=NOW, family="f")
    assert reason(codec, refresh) == "wrong token type"
    assert reason(codec, forge({"alg": "HS256", "kid": "k1"}, claims(typ="id"))) == "bad role or typ claim"


def test_expired_token_is_rejected_after_the_leeway() -> None:
    codec = TokenCodec(settings(leeway=30))
    token, _ = codec.issue(sub="a", role=Role.VIEWER, typ=TokenType.ACCESS, ttl=60, now=NOW)
    codec.verify(token, now=NOW + 60 + 29, expected=ACCESS)
    assert reason(codec, token, now=NOW + 60 + 31) == "expired"


def test_not_yet_valid_token_is_rejected() -> None:
    codec = TokenCodec(settings(leeway=30))
    token = forge({"alg": "HS256", "kid": "k1"}, claims(nbf=NOW + 120, iat=NOW))
    assert reason(codec, token) == "not yet valid"
    assert codec.verify(token, now=NOW + 100, expected=ACCESS).sub == "alice"


@pytest.mark.parametrize("bad", ["NaN", "Infinity", '"123"', "true"])
def test_non_finite_or_non_numeric_exp_is_rejected(bad: str) -> None:
    header = b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    body_json = json.dumps(claims(exp=0)).replace('"exp": 0', f'"exp": {bad}')
    signing_input = f"{header}.{b64(body_json.encode())}"
    token = f"{signing_input}.{b64(hmac.new(SECRET, signing_input.encode(), hashlib.sha256).digest())}"
    with pytest.raises(TokenInvalid):
        TokenCodec(settings()).verify(token, now=NOW, expected=ACCESS)


def test_signature_by_another_secret_is_rejected() -> None:
    token = forge({"alg": "HS256", "kid": "k1"}, claims(), key=b"z" * 32)
    assert reason(TokenCodec(settings()), token) == "bad signature"


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "x" * 9000, "e30.e30.e30"])
def test_garbage_is_rejected_as_malformed(token: str) -> None:
    assert reason(TokenCodec(settings()), token) in {"malformed token", "unknown key id"}


def test_unknown_or_missing_kid_is_rejected() -> None:
    codec = TokenCodec(settings())
    assert reason(codec, forge({"alg": "HS256", "kid": "k9"}, claims())) == "unknown key id"
    assert reason(codec, forge({"alg": "HS256"}, claims())) == "unknown key id"


def test_rotated_key_verifies_until_its_grace_period_ends() -> None:
    old = JwtKey("k1", "HS256", secret=SECRET)
    new = JwtKey("k2", "HS256", secret=b"n" * 40)
    before = TokenCodec(settings(jwt_keys=(old,), active_kid="k1"))
    old_token, _ = before.issue(sub="a", role=Role.VIEWER, typ=TokenType.ACCESS, ttl=3600, now=NOW)
    after = TokenCodec(settings(jwt_keys=(new, replace(old, verify_until=NOW + 600)), active_kid="k2"))
    new_token, new_claims = after.issue(sub="a", role=Role.VIEWER, typ=TokenType.ACCESS, ttl=3600, now=NOW)
    assert new_claims.kid == "k2"
    assert after.verify(old_token, now=NOW + 599, expected=ACCESS).kid == "k1"
    assert reason(after, old_token, now=NOW + 601) == "key retired"
    assert after.verify(new_token, now=NOW + 601, expected=ACCESS).kid == "k2"


def test_refresh_token_carries_its_family() -> None:
    codec = TokenCodec(settings())
    token, _ = codec.issue(sub="a", role=Role.VIEWER, typ=TokenType.REFRESH, ttl=60, now=NOW, family="fam-1")
    assert codec.verify(token, now=NOW, expected={TokenType.REFRESH}).family == "fam-1"
