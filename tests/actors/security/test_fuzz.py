"""Hostile input never crashes the verifiers: tokens are TokenInvalid, webhooks a 4xx verdict."""

from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.security.settings import JwtKey, SecuritySettings, WebhookSettings
from actors.security.tokens import TokenCodec, TokenInvalid, TokenType
from actors.security.webhooks import WebhookVerifier

CODEC = TokenCodec(SecuritySettings(jwt_keys=(JwtKey("k1", secret=b"f" * 40),), active_kid="k1"))
VERIFIER = WebhookVerifier(
    WebhookSettings(
        signature_secrets=(b"s" * 32,),
        github_secrets=(b"g" * 32,),
        standard_secrets=("whsec_" + base64.b64encode(b"k" * 32).decode(),),
        standard_public_keys=("whpk_" + base64.b64encode(b"\x01" * 32).decode(),),
    )
)
NOW = 1_800_000_000


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_random_strings_are_invalid_tokens(token: str) -> None:
    try:
        CODEC.verify(token, now=NOW, expected={TokenType.ACCESS})
    except TokenInvalid:
        return
    raise AssertionError("a random string verified")


@settings(max_examples=300, deadline=None)
@given(header=json_values, payload=json_values, sig=st.binary(max_size=40))
def test_structured_garbage_is_an_invalid_token(header: object, payload: object, sig: bytes) -> None:
    token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(sig)}"
    try:
        CODEC.verify(token, now=NOW, expected={TokenType.ACCESS})
    except TokenInvalid:
        return
    raise AssertionError("garbage verified")


header_names = st.sampled_from(
    [
        "X-Signature",
        "X-Hub-Signature-256",
        "X-GitHub-Delivery",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ]
)


@settings(max_examples=500, deadline=None)
@given(headers=st.dictionaries(header_names, st.text(max_size=120), max_size=6), body=st.binary(max_size=64))
def test_hostile_webhook_headers_get_a_4xx_never_an_exception(headers: dict[str, str], body: bytes) -> None:
    verdict = VERIFIER.verify(headers, body, NOW)
    assert not verdict.ok
    assert 400 <= verdict.status < 500


entries = st.lists(
    st.tuples(
        st.sampled_from(["t", "v1", "v0", "", " t", "v1 "]),
        st.text(alphabet="0123456789abcdef=,-x ", max_size=70),
    ),
    max_size=5,
)


@settings(max_examples=500, deadline=None)
@given(parts=entries)
def test_near_miss_signature_headers_get_a_4xx(parts: list[tuple[str, str]]) -> None:
    header = ",".join(f"{k}={v}" for k, v in parts)
    verdict = VERIFIER.verify({"X-Signature": header}, b"{}", NOW)
    assert not verdict.ok and 400 <= verdict.status < 500


@settings(max_examples=300, deadline=None)
@given(
    sigs=st.lists(st.tuples(st.sampled_from(["v1", "v1a", "v2", ""]), st.binary(max_size=70)), max_size=4),
    ts=st.sampled_from([str(NOW), "", "-1", "1e9", str(NOW + 10**6)]),
)
def test_near_miss_standard_webhooks_get_a_4xx(sigs: list[tuple[str, bytes]], ts: str) -> None:
    value = " ".join(f"{v},{base64.b64encode(raw).decode()}" for v, raw in sigs)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": ts, "webhook-signature": value}
    verdict = VERIFIER.verify(headers, b"{}", NOW)
    assert not verdict.ok and 400 <= verdict.status < 500
