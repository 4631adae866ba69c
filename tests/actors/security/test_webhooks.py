"""Webhook verification. Expected signatures come from the schemes' published examples or are computed here
with hmac/hashlib/base64/PyNaCl directly, never by orch's own code."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from nacl.signing import SigningKey

from actors.security.settings import WebhookSettings
from actors.security.webhooks import ReplayCache, WebhookVerifier

NOW = 1_800_000_000
SIG_SECRET = b"orch-webhook-secret-0123456789"
GH_SECRET = b"It's a Secret to Everybody"
STD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SIGNING_KEY = SigningKey(b"\x07" * 32)
STD_PUBLIC = "whpk_" + base64.b64encode(bytes(SIGNING_KEY.verify_key)).decode()


def verifier(**kw: object) -> WebhookVerifier:
    base: dict[str, object] = {
        "signature_secrets": (SIG_SECRET,),
        "github_secrets": (GH_SECRET,),
        "standard_secrets": (STD_SECRET,),
        "standard_public_keys": (STD_PUBLIC,),
    }
    base.update(kw)
    return WebhookVerifier(WebhookSettings(**base))  # type: ignore[arg-type]


def stripe_sig(t: int | str, body: bytes, secret: bytes = SIG_SECRET) -> str:
    return hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- X-Signature (t=, v1=)


def test_signature_scheme_accepts_an_independently_computed_signature() -> None:
    body = b'{"event":"deploy","id":42}'
    header = f"t={NOW},v1={stripe_sig(NOW, body)}"
    verdict = verifier().verify({"X-Signature": header}, body, NOW)
    assert (verdict.ok, verdict.status, verdict.scheme) == (True, 200, "signature")


def test_signature_scheme_checks_the_raw_body_not_reserialised_json() -> None:
    raw = b'{"b": 1,  "a": 2}'
    header = f"t={NOW},v1={stripe_sig(NOW, raw)}"
    assert verifier().verify({"X-Signature": header}, raw, NOW).ok
    assert verifier().verify({"X-Signature": header}, b'{"a":2,"b":1}', NOW).status == 401


def test_signature_scheme_accepts_any_of_several_v1_and_ignores_unknown_schemes() -> None:
    body = b"payload"
    old = stripe_sig(NOW, body, b"old-secret-xxxxxxxxxxxx")
    header = f"t={NOW},v0=zzz,v1={old},v1={stripe_sig(NOW, body)},v9=whatever"
    assert verifier().verify({"x-signature": header}, body, NOW).ok


@pytest.mark.parametrize(
    "form",
    [
        "t={t},v1={sig}",  # the canonical form, parsed in one step
        "t={t},v1={upper}",
        " t={t} , v1={sig} ",
        "v1={sig},t={t}",
        "t={t},v1={sig},v2=other",
    ],
)
def test_signature_scheme_judges_every_spelling_of_one_signature_alike(form: str) -> None:
    sig = stripe_sig(NOW, b"payload")
    header = form.format(t=NOW, sig=sig, upper=sig.upper())
    verdict = verifier().verify({"X-Signature": header}, b"payload", NOW)
    assert (verdict.ok, verdict.status, verdict.scheme, verdict.delivery_id) == (True, 200, "signature", None)
    assert verifier().verify({"X-Signature": header}, b"payload!", NOW).status == 401


def test_signature_scheme_secret_rotation_accepts_old_and_new_secrets() -> None:
    body = b"payload"
    v = verifier(signature_secrets=(b"new-secret-0123456789", SIG_SECRET))
    assert v.verify({"X-Signature": f"t={NOW},v1={stripe_sig(NOW, body)}"}, body, NOW).ok


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("", 400),
        ("   ", 400),
        ("t=abc,v1=" + "0" * 64, 400),
        ("t=-5,v1=" + "0" * 64, 400),
        ("t=1.5,v1=" + "0" * 64, 400),
        ("t=١٢٣,v1=" + "0" * 64, 400),  # non-ASCII digits
        (f"t={NOW}", 400),  # no v1
        (f"t={NOW},v0=" + "0" * 64, 400),
        ("v1=" + "0" * 64, 400),  # no t
        (f"t={NOW},t={NOW},v1=" + "0" * 64, 400),
        (f"t={NOW},v1=xyz", 400),  # bad hex
        (f"t={NOW},v1=" + "g" * 64, 400),
        (f"t={NOW},garbage", 400),
        (f"t={NOW},v1=" + "0" * 64, 401),  # well-formed, wrong
    ],
)
def test_signature_scheme_malformed_headers_get_a_4xx(header: str, status: int) -> None:
    assert verifier().verify({"X-Signature": header}, b"body", NOW).status == status


@pytest.mark.parametrize("skew", [-301, 301, -10_000])
def test_signature_scheme_refuses_timestamps_outside_tolerance_both_ways(skew: int) -> None:
    t = NOW + skew
    verdict = verifier().verify({"X-Signature": f"t={t},v1={stripe_sig(t, b'x')}"}, b"x", NOW)
    assert (verdict.status, verdict.reason) == (401, "timestamp outside tolerance")


@pytest.mark.parametrize("skew", [-300, 300, 0])
def test_signature_scheme_accepts_timestamps_at_the_tolerance_edges(skew: int) -> None:
    t = NOW + skew
    assert verifier().verify({"X-Signature": f"t={t},v1={stripe_sig(t, b'x')}"}, b"x", NOW).ok


def test_signature_scheme_replay_is_refused() -> None:
    v = verifier()
    headers = {"X-Signature": f"t={NOW},v1={stripe_sig(NOW, b'x')}"}
    assert v.verify(headers, b"x", NOW).ok
    assert v.verify(headers, b"x", NOW + 5).status == 409
    # wrapping the same signature with junk entries does not make it new
    again = {"X-Signature": f"t={NOW},v1={'1' * 64},v1={stripe_sig(NOW, b'x')}"}
    assert v.verify(again, b"x", NOW + 6).status == 409


def test_unconfigured_scheme_is_refused_with_401() -> None:
    headers = {"X-Signature": f"t={NOW},v1={stripe_sig(NOW, b'x')}"}
    assert verifier(signature_secrets=()).verify(headers, b"x", NOW).status == 401


def test_request_without_any_signature_header_is_refused() -> None:
    verdict = verifier().verify({"Content-Type": "application/json"}, b"{}", NOW)
    assert (verdict.ok, verdict.status) == (False, 401)


# ---------------------------------------------------------------- GitHub


def test_github_published_example_vector_verifies() -> None:
    # docs.github.com "Validating webhook deliveries": secret, payload and signature as published
    headers = {
        "X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    }
    verdict = verifier().verify(headers, b"Hello, World!", NOW)
    assert (verdict.ok, verdict.scheme, verdict.delivery_id) == (True, "github", headers["X-GitHub-Delivery"])


def test_github_delivery_is_deduplicated() -> None:
    v = verifier()
    body = b'{"action":"opened"}'
    sig = "sha256=" + hmac.new(GH_SECRET, body, hashlib.sha256).hexdigest()
    assert v.verify({"X-Hub-Signature-256": sig, "X-GitHub-Delivery": "d-1"}, body, NOW).ok
    assert v.verify({"X-Hub-Signature-256": sig, "X-GitHub-Delivery": "d-1"}, body, NOW + 60).status == 409
    # same signed body under a fresh delivery id is still a replay
    assert v.verify({"X-Hub-Signature-256": sig, "X-GitHub-Delivery": "d-2"}, body, NOW + 61).status == 409


@pytest.mark.parametrize(
    ("sig", "delivery", "status"),
    [
        ("sha1=" + "0" * 40, "d", 400),
        ("sha256=", "d", 400),
        ("sha256=" + "z" * 64, "d", 400),
        ("", "d", 400),
        ("sha256=" + "0" * 64, "", 400),
        ("sha256=" + "0" * 64, "bad id with spaces", 400),
        ("sha256=" + "0" * 64, "d", 401),
    ],
)
def test_github_malformed_headers_get_a_4xx(sig: str, delivery: str, status: int) -> None:
    headers = {"X-Hub-Signature-256": sig, "X-GitHub-Delivery": delivery}
    assert verifier().verify(headers, b"x", NOW).status == status


# ---------------------------------------------------------------- Standard Webhooks


def test_standard_webhooks_published_example_vector_verifies() -> None:
    # the example in the Standard Webhooks specification
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    verdict = verifier().verify(headers, b'{"test": 2432232314}', 1614265330)
    assert (verdict.ok, verdict.scheme) == (True, "standard")


def std_headers(
    body: bytes, *, msg_id: str = "msg_1", t: int = NOW, sig: str | None = None
) -> dict[str, str]:
    key = base64.b64decode(STD_SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{t}.".encode() + body, hashlib.sha256).digest()
    value = sig if sig is not None else "v1," + base64.b64encode(mac).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(t), "webhook-signature": value}


def test_standard_webhooks_v1a_ed25519_signature_verifies_with_a_configured_key_only() -> None:
    body = b'{"type":"task.done"}'
    signed = f"msg_2.{NOW}.".encode() + body
    sig = "v1a," + base64.b64encode(SIGNING_KEY.sign(signed).signature).decode()
    headers = std_headers(body, msg_id="msg_2", sig=sig)
    assert verifier().verify(headers, body, NOW).ok
    stranger = SigningKey(b"\x09" * 32)
    forged = "v1a," + base64.b64encode(stranger.sign(signed).signature).decode()
    assert verifier().verify(std_headers(body, msg_id="msg_3", sig=forged), body, NOW).status == 401
    assert verifier(standard_public_keys=()).verify(headers, body, NOW).status == 401


def test_standard_webhooks_accept_one_good_signature_among_several() -> None:
    body = b"{}"
    good = std_headers(body)["webhook-signature"]
    headers = std_headers(body, sig=f"v1,{base64.b64encode(b'0' * 32).decode()} v2,abc {good}")
    assert verifier().verify(headers, body, NOW).ok


def test_standard_webhooks_replayed_id_is_refused() -> None:
    v = verifier()
    body = b"{}"
    assert v.verify(std_headers(body), body, NOW).ok
    assert v.verify(std_headers(body), body, NOW + 1).status == 409


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"webhook-signature": "v1,AAAA"}, 400),  # no id, no timestamp
        ({"webhook-id": "m", "webhook-timestamp": "", "webhook-signature": "v1,AAAA"}, 400),
        ({"webhook-id": "m", "webhook-timestamp": "abc", "webhook-signature": "v1,AAAA"}, 400),
        ({"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": ""}, 400),
        ({"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": "v1"}, 400),
        ({"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": "v1,***"}, 400),
        ({"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": "v1,AAAA"}, 400),
        ({"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": "v2,AAAA"}, 400),
        ({"webhook-id": "m", "webhook-timestamp": str(NOW - 301), "webhook-signature": "v1,AAAA"}, 401),
        (
            {
                "webhook-id": "m",
                "webhook-timestamp": str(NOW + 400),
                "webhook-signature": "v1," + "A" * 43 + "=",
            },
            401,
        ),
    ],
)
def test_standard_webhooks_malformed_headers_get_a_4xx(headers: dict[str, str], status: int) -> None:
    assert verifier().verify(headers, b"{}", NOW).status == status


# ---------------------------------------------------------------- replay cache


def test_replay_cache_forgets_after_expiry_and_stays_bounded() -> None:
    cache = ReplayCache(max_entries=3)
    cache.add("a", 10.0, now=0.0)
    assert cache.seen("a", 9.0)
    assert not cache.seen("a", 10.0)
    for i, key in enumerate("bcde"):
        cache.add(key, 100.0 + i, now=1.0)
    assert len(cache) == 3
    assert not cache.seen("b", 2.0)  # the soonest to expire was evicted
    assert cache.seen("e", 2.0)
