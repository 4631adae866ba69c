"""From `config.security` to a running security actor: settings, first-run secrets, the first admin.

Secrets rules (issue #5/#6):
- `security.jwt_secret` (ORCH_JWT_SECRET) set: it must be >= 32 bytes and not a well-known default, or the
  node refuses to start (unless `security.dev_mode`). The key id is derived from the secret, so changing
  the secret changes the `kid`.
- not set: a random 256-bit secret is generated ONCE and kept in `<data_dir>/secrets/jwt.key` (mode 0600);
  every later start (and the CLI working on the data dir) reuses it. The log says so when it is created.
- the audit chain's HMAC key lives next to it (`audit.key`), generated the same way.
First admin: when no admin exists at start-up, `security.admin_user` + `security.admin_password`
(ORCH_ADMIN_USER / ORCH_ADMIN_PASSWORD) create it; without them a strong one-time password is generated
and printed ONCE on stderr, with how to change it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import stat
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from actors.security.actor import SecurityActor
from actors.security.messages import (
    Conflict,
    CreateUser,
    InvalidRequest,
    JwtKey,
    ListUsers,
    LockoutPolicy,
    RatePolicy,
    Role,
    SecurityMsg,
    SecuritySettings,
    SettingsError,
    UserInfo,
    WebhookSettings,
    validate_settings,
)
from orch.config import Config, ConfigError, SecurityConfig
from orch.logs import register_secret
from runtime import ActorRef, WorkerSpec, worker

if TYPE_CHECKING:
    from orch.node import Node

__all__ = [
    "AUDIT_KEY_FILE",
    "JWT_SECRET_FILE",
    "SECRETS_DIR",
    "ensure_first_admin",
    "generate_password",
    "load_or_create_secret",
    "print_first_admin",
    "rate_limits",
    "security_settings",
    "security_spec",
]

_log = logging.getLogger("orch.security")

SECRETS_DIR = "secrets"
JWT_SECRET_FILE = "jwt.key"
AUDIT_KEY_FILE = "audit.key"
MAILBOX_CAPACITY = 10_000  # the hot path is load-shed (ask_nowait): a burst must fit
SECRET_HINT = (
    "use at least 32 random bytes (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`),"
    " or unset it to let orch generate and keep one in the data dir, or set security.dev_mode: true"
    " (ORCH_DEV_MODE=1) for development only"
)


# ------------------------------------------------------------------------------------------------ secrets
def load_or_create_secret(data_dir: Path, name: str, what: str) -> bytes:
    """The 32-byte secret kept in `<data_dir>/secrets/<name>`, generated (mode 0600) on first use."""
    path = data_dir / SECRETS_DIR / name
    try:
        return _read_secret(path, what)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it meanwhile: use theirs
        return _read_secret(path, what)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(value.hex() + "\n")
        out.flush()
        os.fsync(out.fileno())
    _log.warning(
        "generated a new %s in %s (mode 0600); it is reused on every start: back it up with the data dir",
        what,
        path,
        extra={"path": str(path)},
    )
    return value


def _read_secret(path: Path, what: str) -> bytes:
    text = path.read_text(encoding="ascii").strip()
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) < 32:
        raise ConfigError(f"{path}: the stored {what} is damaged (expected 64 hex digits); restore it")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        _log.warning("%s is readable by other users (mode %o); chmod 600 it", path, mode)
    return value


def _kid(prefix: str, secret: bytes) -> str:
    # Derived from the secret, so rotating the secret rotates the kid; never reveals the secret.
    return f"{prefix}-{hashlib.sha256(b'orch-kid:' + secret).hexdigest()[:12]}"


# ----------------------------------------------------------------------------------------------- settings
def security_settings(config: Config) -> SecuritySettings:
    """The security actor's settings for `config`; ConfigError naming the key when they are unsafe.

    Reads (and on first run creates) the secrets kept in the data dir: call once at start-up.
    """
    sec = config.security
    data_dir = config.database.data_dir
    if sec.jwt_secret:
        secret = sec.jwt_secret.encode("utf-8")
        key = JwtKey(_kid("cfg", secret), "HS256", secret=secret)
    else:
        secret = load_or_create_secret(data_dir, JWT_SECRET_FILE, "JWT signing secret")
        key = JwtKey(_kid("local", secret), "HS256", secret=secret)
    settings = SecuritySettings(
        jwt_keys=(key,),
        active_kid=key.kid,
        issuer=sec.jwt_issuer,
        audience=sec.jwt_audience,
        access_ttl=sec.access_token_ttl,
        refresh_ttl=sec.refresh_token_ttl,
        bcrypt_cost=sec.bcrypt_cost,
        lockout=LockoutPolicy(max_failures=sec.lockout_max_failures, window=sec.lockout_window),
        rate_limits=rate_limits(sec.rate_limits),
        webhooks=_webhook_settings(sec),
        dev_mode=sec.dev_mode,
    )
    _check_each_knob(settings)  # before creating anything more in the data dir
    audit_key = load_or_create_secret(data_dir, AUDIT_KEY_FILE, "audit chain key")
    settings = replace(settings, audit_key=audit_key)
    try:
        warnings = validate_settings(settings)
    except SettingsError as exc:  # pragma: no cover - every knob was checked on its own above
        raise ConfigError(f"security: {exc}") from None
    for warning in warnings:
        _log.warning("security: %s", warning)
    return settings


def rate_limits(entries: tuple[str, ...]) -> dict[str, RatePolicy]:
    """The security actor's default limits, overridden by entries like "write=6000/60" or "read=600/60/50"."""
    policies = dict(SecuritySettings().rate_limits)
    for entry in entries:
        name, _, spec = entry.partition("=")
        parts = spec.split("/")
        try:
            limit, window = int(parts[0]), float(parts[1].removesuffix("s"))
            burst = int(parts[2]) if len(parts) == 3 else None
            if len(parts) > 3:
                raise ValueError(entry)
            policies[name.strip()] = RatePolicy(name.strip(), limit, window, burst)
        except (ValueError, IndexError):
            raise ConfigError(
                f"security.rate_limits: {entry!r} must look like CLASS=LIMIT/WINDOW_SECONDS[/BURST], "
                "e.g. write=6000/60"
            ) from None
    return policies


def _webhook_settings(sec: SecurityConfig) -> WebhookSettings:
    return WebhookSettings(
        signature_secrets=(sec.webhook_secret.encode("utf-8"),) if sec.webhook_secret else (),
        github_secrets=(sec.github_webhook_secret.encode("utf-8"),) if sec.github_webhook_secret else (),
        standard_secrets=(sec.standard_webhook_secret,) if sec.standard_webhook_secret else (),
        standard_public_keys=tuple(sec.webhook_public_keys),
        tolerance=sec.webhook_tolerance,
    )


def _check_each_knob(settings: SecuritySettings) -> None:
    """Validate each knob alone (against known-good others) so every problem names its config key."""
    good_key = JwtKey("probe", "HS256", secret=secrets.token_bytes(32))
    base = replace(
        settings,
        jwt_keys=(good_key,),
        active_kid="probe",
        bcrypt_cost=12,
        webhooks=WebhookSettings(),
        audit_key=b"k" * 32,
    )
    w = settings.webhooks
    candidates = {
        "security.jwt_secret": replace(base, jwt_keys=settings.jwt_keys, active_kid=settings.active_kid),
        "security.bcrypt_cost": replace(base, bcrypt_cost=settings.bcrypt_cost),
        "security.webhook_secret": replace(
            base, webhooks=WebhookSettings(signature_secrets=w.signature_secrets, tolerance=w.tolerance)
        ),
        "security.github_webhook_secret": replace(
            base, webhooks=WebhookSettings(github_secrets=w.github_secrets)
        ),
        "security.standard_webhook_secret": replace(
            base, webhooks=WebhookSettings(standard_secrets=w.standard_secrets)
        ),
        "security.webhook_public_keys": replace(
            base, webhooks=WebhookSettings(standard_public_keys=w.standard_public_keys)
        ),
    }
    problems: list[str] = []
    for key, candidate in candidates.items():
        try:
            validate_settings(candidate)
        except SettingsError as exc:
            hint = f"; {SECRET_HINT}" if key == "security.jwt_secret" else ""
            problems.append(f"{key}: {exc}{hint}")
    if problems:
        raise ConfigError.many(problems)


def security_spec(node: Node) -> WorkerSpec[SecurityMsg]:
    """The security actor's child spec; keeps its ref on the node and registers the first-admin step."""
    settings = security_settings(node.config)
    for key in settings.jwt_keys:
        if key.secret is not None:
            register_secret(key.secret.hex())

    def factory() -> SecurityActor:
        return SecurityActor(node.database(), settings)

    spec = worker("security", factory, capacity=MAILBOX_CAPACITY)
    node.security = spec.ref
    node.on_started.append(ensure_first_admin)
    return spec


# ------------------------------------------------------------------------------------------- first admin
async def ensure_first_admin(node: Node, *, out: TextIO | None = None) -> None:
    """Create the first admin when none exists: from config/env, else generated and printed once."""
    ref = node.security
    if ref is None:
        return
    users: tuple[UserInfo, ...] = await ref.ask(ListUsers)
    if any(u.role is Role.ADMIN for u in users):
        return
    sec = node.config.security
    if sec.admin_user is not None and sec.admin_password is not None:
        await _create_from_config(ref, sec.admin_user, sec.admin_password)
        return
    taken = {u.name for u in users}
    name = "admin" if "admin" not in taken else f"admin-{secrets.token_hex(3)}"
    password = generate_password()
    register_secret(password)
    await ref.ask(lambda reply: CreateUser(name, password, Role.ADMIN, "first-run", reply))
    _log.warning("created the first admin %r; its one-time password was printed on stderr", name)
    print_first_admin(name, password, out if out is not None else sys.stderr)


async def _create_from_config(ref: ActorRef[SecurityMsg], name: str, password: str) -> None:
    try:
        await ref.ask(lambda reply: CreateUser(name, password, Role.ADMIN, "ORCH_ADMIN_USER", reply))
    except InvalidRequest as exc:
        raise ConfigError(f"security.admin_password: {exc.message}") from None
    except Conflict:
        raise ConfigError(
            f"security.admin_user: user {name!r} already exists but is not an admin; "
            "choose another name or promote it with `orch users set-role`"
        ) from None
    _log.info("created the first admin %r from ORCH_ADMIN_USER / ORCH_ADMIN_PASSWORD", name)


def generate_password() -> str:
    """A strong one-time password (~144 bits), URL-safe, within bcrypt's 72 bytes."""
    return secrets.token_urlsafe(18)


def print_first_admin(name: str, password: str, out: TextIO) -> None:
    """The one-time credentials notice (the only place the password is ever shown)."""
    out.write(
        "\n"
        "orch: no admin existed, so one was created. These credentials are shown ONCE:\n"
        f"    user:     {name}\n"
        f"    password: {password}\n"
        "  Log in:             orch login --user " + name + "\n"
        "  Change the password: orch users reset-password " + name + "\n"
        "  (or set ORCH_ADMIN_USER and ORCH_ADMIN_PASSWORD before the first start to choose them)\n"
        "\n"
    )
    out.flush()
