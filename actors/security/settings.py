"""Configuration of the security actor: one frozen dataclass the node builds from YAML/env.

`validate_settings` is what the node calls at start-up: it refuses missing, short or well-known default
secrets unless `dev_mode` is set explicitly.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import jwt

from actors.security.ratelimit import RatePolicy

JwtAlgorithm = Literal["HS256", "EdDSA"]

MIN_HMAC_SECRET_BYTES = 32

# Secrets that have shipped in examples, seeds or tutorials: refusing them is cheap insurance.
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        b"secret",
        b"changeme",
        b"change-me",
        b"dev-secret",
        b"supersecret",
        b"your-256-bit-secret",
        b"orch-dev-secret-change-me",
        b"0" * 32,
        b"x" * 32,
        b"a" * 32,
    }
)


class SettingsError(ValueError):
    """The security configuration is unsafe or inconsistent; the node must not start with it."""


@dataclass(frozen=True, slots=True)
class JwtKey:
    """One signing/verification key. `verify_until` (unix seconds) ends the grace period of a retired key."""

    kid: str
    alg: JwtAlgorithm = "HS256"
    secret: bytes | None = None  # HS256
    private_key_pem: bytes | None = None  # EdDSA signing (only the active key needs it)
    public_key_pem: bytes | None = None  # EdDSA verification
    verify_until: float | None = None


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """Account lockout: `max_failures` within `window` s locks for `base_lockout` s, doubling each time."""

    max_failures: int = 5
    window: float = 15 * 60
    base_lockout: float = 5 * 60
    multiplier: float = 2.0
    max_lockout: float = 24 * 3600
    # Failures from one client key across all accounts (password spraying, cheap mass lockout).
    ip_max_failures: int = 20
    ip_window: float = 15 * 60


def default_rate_policies() -> Mapping[str, RatePolicy]:
    """Per route class defaults: generous for reads and workers, tight for authentication."""
    return {
        "default": RatePolicy("default", limit=600, window=60.0),
        "read": RatePolicy("read", limit=1200, window=60.0),
        "write": RatePolicy("write", limit=600, window=60.0),
        "worker": RatePolicy("worker", limit=6000, window=60.0),
        "stream": RatePolicy("stream", limit=60, window=60.0),
        "auth": RatePolicy("auth", limit=30, window=60.0),
        "webhook": RatePolicy("webhook", limit=6000, window=60.0),
    }


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Secrets and keys for the three accepted signature schemes; an empty tuple disables a scheme."""

    signature_secrets: tuple[bytes, ...] = ()  # X-Signature (t=,v1=), several for rotation
    github_secrets: tuple[bytes, ...] = ()  # X-Hub-Signature-256
    standard_secrets: tuple[str, ...] = ()  # Standard Webhooks v1, "whsec_<base64>"
    standard_public_keys: tuple[str, ...] = ()  # Standard Webhooks v1a, "whpk_<base64>" Ed25519
    tolerance: float = 300.0
    github_delivery_ttl: float = 24 * 3600.0  # GitHub deliveries carry no timestamp: remember ids longer
    replay_cache_size: int = 1_000_000


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """Everything the security actor needs; the node builds it from YAML/env, `validate_settings` checks."""

    jwt_keys: tuple[JwtKey, ...] = ()
    active_kid: str = ""
    issuer: str = "orch"
    audience: str = "orch-api"
    access_ttl: float = 15 * 60
    refresh_ttl: float = 14 * 24 * 3600
    system_token_ttl: float = 365 * 24 * 3600
    leeway: float = 30.0
    bcrypt_cost: int = 12
    bcrypt_threads: int = 2
    max_pending_logins: int = 256
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)
    rate_limits: Mapping[str, RatePolicy] = field(default_factory=default_rate_policies)
    rate_limit_keys: int = 200_000
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    token_cache_size: int = 20_000
    audit_key: bytes | None = None  # HMAC key for the audit chain; without it the chain is plain SHA-256
    dev_mode: bool = False


def validate_settings(settings: SecuritySettings) -> list[str]:
    """Raise SettingsError on unsafe configuration; return the warnings to log at start-up.

    Weak secrets (missing, short, well-known) are fatal unless `dev_mode` is set, then they are warnings.
    """
    problems = _key_problems(settings) + _webhook_problems(settings.webhooks)
    if settings.audit_key is None:
        problems.append("warn:no audit_key: the audit chain detects edits but not a full recomputation")
    fatal = [p for p in problems if not p.startswith(("dev:", "warn:"))]
    dev_only = [p.removeprefix("dev:") for p in problems if p.startswith("dev:")]
    warnings = [p.removeprefix("warn:") for p in problems if p.startswith("warn:")]
    if fatal:
        raise SettingsError("; ".join(fatal))
    if dev_only and not settings.dev_mode:
        raise SettingsError("; ".join(dev_only) + " (set dev mode explicitly to run with this)")
    return dev_only + warnings


def with_dev_defaults(settings: SecuritySettings) -> SecuritySettings:
    """In dev mode without a usable signing key, add an ephemeral random one (tokens die with the process)."""
    active = next((k for k in settings.jwt_keys if k.kid == settings.active_kid), None)
    if not settings.dev_mode or (active is not None and (active.secret or active.private_key_pem)):
        return settings
    ephemeral = JwtKey("dev-ephemeral", "HS256", secret=secrets.token_bytes(32))
    return replace(settings, jwt_keys=(ephemeral, *settings.jwt_keys), active_kid=ephemeral.kid)


def _key_problems(s: SecuritySettings) -> list[str]:
    out: list[str] = []
    kids = [k.kid for k in s.jwt_keys]
    if not s.jwt_keys:
        return ["dev:no JWT key configured"]
    if len(set(kids)) != len(kids):
        out.append("duplicate JWT kid")
    active = [k for k in s.jwt_keys if k.kid == s.active_kid]
    if not active:
        out.append(f"active_kid {s.active_kid!r} names no configured key")
    elif active[0].verify_until is not None:
        out.append("the active JWT key must not have verify_until")
    for key in s.jwt_keys:
        out += _one_key_problems(key, is_active=key.kid == s.active_kid)
    if not s.issuer or not s.audience:
        out.append("issuer and audience must be set")
    if not 4 <= s.bcrypt_cost <= 31:
        out.append("bcrypt_cost must be within 4..31")
    elif s.bcrypt_cost < 10:
        out.append("dev:bcrypt_cost below 10")
    if "default" not in s.rate_limits:
        out.append("rate_limits needs a 'default' policy")
    return out


def _one_key_problems(key: JwtKey, *, is_active: bool) -> list[str]:
    if key.alg == "HS256":
        if not key.secret:
            return [f"dev:JWT key {key.kid!r} has no secret"]
        if key.secret.strip().lower() in KNOWN_DEFAULT_SECRETS:
            return [f"dev:JWT key {key.kid!r} uses a well-known default secret"]
        if len(key.secret) < MIN_HMAC_SECRET_BYTES:
            return [f"dev:JWT key {key.kid!r} secret is shorter than {MIN_HMAC_SECRET_BYTES} bytes"]
        return []
    if key.public_key_pem is None:
        return [f"EdDSA key {key.kid!r} needs public_key_pem"]
    if is_active and key.private_key_pem is None:
        return [f"active EdDSA key {key.kid!r} needs private_key_pem"]
    algo = jwt.get_algorithm_by_name("EdDSA")
    for pem in (key.public_key_pem, key.private_key_pem):
        try:
            if pem is not None:
                algo.prepare_key(pem)
        except (ValueError, TypeError, jwt.InvalidKeyError):
            return [f"EdDSA key {key.kid!r} is not a valid Ed25519 PEM key"]
    return []


def _webhook_problems(w: WebhookSettings) -> list[str]:
    out: list[str] = []
    for secret in (*w.signature_secrets, *w.github_secrets):
        if len(secret) < 16 or secret.strip().lower() in KNOWN_DEFAULT_SECRETS:
            out.append("dev:a webhook secret is shorter than 16 bytes or a well-known default")
    for std in w.standard_secrets:
        try:
            if len(base64.b64decode(std.removeprefix("whsec_"), validate=True)) < 16:
                out.append("dev:a Standard Webhooks secret is shorter than 16 bytes")
        except ValueError:
            out.append("a Standard Webhooks secret is not whsec_<base64>")
    for pk in w.standard_public_keys:
        try:
            if len(base64.b64decode(pk.removeprefix("whpk_"), validate=True)) != 32:
                out.append("a Standard Webhooks public key is not 32 bytes")
        except ValueError:
            out.append("a Standard Webhooks public key is not whpk_<base64>")
    if not 1 <= w.tolerance <= 3600:
        out.append("webhook tolerance must be within 1..3600 s")
    return out
