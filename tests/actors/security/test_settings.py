"""Start-up validation: weak or missing secrets stop the node unless dev mode is explicit."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from actors.security.settings import (
    JwtKey,
    SecuritySettings,
    SettingsError,
    WebhookSettings,
    validate_settings,
    with_dev_defaults,
)

GOOD = SecuritySettings(
    jwt_keys=(JwtKey("k1", secret=b"s" * 8 + b"0123456789abcdef0123456789"),),
    active_kid="k1",
    audit_key=b"a" * 8 + b"0123456789abcdef0123456789",
)


def test_good_settings_pass_without_warnings() -> None:
    assert validate_settings(GOOD) == []


@pytest.mark.parametrize(
    "keys",
    [
        (),
        (JwtKey("k1", secret=None),),
        (JwtKey("k1", secret=b"short"),),
        (JwtKey("k1", secret=b"your-256-bit-secret"),),
        (JwtKey("k1", secret=b"0" * 32),),
    ],
)
def test_missing_short_or_default_secret_refuses_to_start(keys: tuple[JwtKey, ...]) -> None:
    bad = replace(GOOD, jwt_keys=keys)
    with pytest.raises(SettingsError, match="dev mode"):
        validate_settings(bad)
    assert validate_settings(replace(bad, dev_mode=True))  # allowed, with warnings


def test_inconsistent_settings_refuse_even_in_dev_mode() -> None:
    with pytest.raises(SettingsError, match="active_kid"):
        validate_settings(replace(GOOD, active_kid="nope", dev_mode=True))
    with pytest.raises(SettingsError, match="needs public_key_pem"):
        validate_settings(replace(GOOD, jwt_keys=(*GOOD.jwt_keys, JwtKey("ed", "EdDSA")), dev_mode=True))
    with pytest.raises(SettingsError, match="whsec_"):
        validate_settings(replace(GOOD, webhooks=WebhookSettings(standard_secrets=("whsec_***",))))


def test_short_webhook_secret_needs_dev_mode() -> None:
    short = replace(GOOD, webhooks=WebhookSettings(signature_secrets=(b"abc",)))
    with pytest.raises(SettingsError):
        validate_settings(short)
    good_std = "whsec_" + base64.b64encode(b"k" * 24).decode()
    assert validate_settings(replace(GOOD, webhooks=WebhookSettings(standard_secrets=(good_std,)))) == []


def test_missing_audit_key_is_a_warning_not_an_error() -> None:
    assert any("audit_key" in w for w in validate_settings(replace(GOOD, audit_key=None)))


def test_broken_eddsa_pem_is_refused() -> None:
    broken = JwtKey(
        "ed", "EdDSA", public_key_pem=b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"
    )
    with pytest.raises(SettingsError, match="not a valid Ed25519"):
        validate_settings(replace(GOOD, jwt_keys=(*GOOD.jwt_keys, broken)))


def test_dev_mode_without_a_key_gets_an_ephemeral_one() -> None:
    dev = with_dev_defaults(SecuritySettings(dev_mode=True))
    assert dev.active_kid == "dev-ephemeral"
    assert dev.jwt_keys[0].secret is not None and len(dev.jwt_keys[0].secret) == 32
    assert with_dev_defaults(GOOD) is GOOD
    assert with_dev_defaults(SecuritySettings()) == SecuritySettings()  # never outside dev mode
