"""Node configuration: YAML file + `${VAR}` substitution + `ORCH_...` env overrides -> frozen dataclasses.

Precedence, lowest first: built-in defaults, the YAML file, environment variables, explicit overrides (CLI
flags). Every problem is reported as `ConfigError("<section>.<key>: <problem>")`; secrets are never echoed.

Environment overrides: the named shortcuts in `ENV_SHORTCUTS` (ORCH_DATA_DIR, ORCH_PORT, ORCH_JWT_SECRET, ...)
and, for any key, `ORCH_<SECTION>__<KEY>` (e.g. `ORCH_SERVER__MAX_BODY_BYTES=2097152`). Empty values are
ignored. In the file, string values may use `${VAR}` (required), `${VAR:-default}` (default when unset or
empty) and `$${` for a literal `${`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from orch._coerce import ConfigError, build_section

__all__ = [
    "ENV_SHORTCUTS",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "FeedsConfig",
    "LoggingConfig",
    "MonitoringConfig",
    "NotificationsConfig",
    "SecurityConfig",
    "ServerConfig",
    "load_config",
]


def _f(default: Any, *, secret: bool = False, **constraints: Any) -> Any:
    """A config field: `constraints` (min, max, choices, min_len, upper) drive validation in `_coerce`."""
    return field(default=default, repr=not secret, metadata={"secret": secret, **constraints})


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """HTTP listener. `port` 0 asks the OS for a free port (the ready line reports the real one)."""

    host: str = _f("127.0.0.1", min_len=1)
    port: int = _f(8080, min=0, max=65535)
    max_body_bytes: int = _f(1024 * 1024, min=1, max=1024**3)
    cors_origins: tuple[str, ...] = _f((), origins=True)
    shutdown_grace: float = _f(10.0, min=0.0, max=3600.0)
    keep_alive_timeout: float = _f(5.0, min=0.1, max=3600.0)
    keep_alive_max_requests: int = _f(1000, min=1, max=10_000_000)
    access_log: bool = _f(True)
    # Pending connections the kernel queues before the server accepts them (listen(2); capped by
    # net.core.somaxconn). Hypercorn's own default, 100, overflows when thousands of feed clients
    # connect at once: the overflow shows up as ECONNRESET or a connection closed before any answer.
    backlog: int = _f(4096, min=1, max=65535)


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """SQLite storage. A relative `path` is relative to `data_dir`; `data_dir` is relative to the cwd."""

    data_dir: Path = field(default=Path("data"))
    path: Path | None = field(default=None)
    synchronous: str = _f("FULL", choices=("OFF", "NORMAL", "FULL", "EXTRA"), upper=True)

    @property
    def db_path(self) -> Path:
        """The database file the node opens."""
        if self.path is None:
            return self.data_dir / "orch.db"
        return self.path if self.path.is_absolute() else self.data_dir / self.path


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """Raw security knobs; the node turns them into the security actor's settings (which vet the secrets)."""

    dev_mode: bool = _f(False)
    jwt_secret: str | None = _f(None, secret=True)
    jwt_issuer: str = _f("orch", min_len=1)
    jwt_audience: str = _f("orch-api", min_len=1)
    access_token_ttl: float = _f(15 * 60.0, min=1.0, max=7 * 24 * 3600.0)
    refresh_token_ttl: float = _f(14 * 24 * 3600.0, min=60.0, max=365 * 24 * 3600.0)
    bcrypt_cost: int = _f(12, min=4, max=16)
    webhook_secret: str | None = _f(None, secret=True)
    github_webhook_secret: str | None = _f(None, secret=True)
    standard_webhook_secret: str | None = _f(None, secret=True)
    webhook_tolerance: float = _f(300.0, min=1.0, max=3600.0)
    lockout_max_failures: int = _f(5, min=1, max=1000)
    lockout_window: float = _f(15 * 60.0, min=1.0, max=7 * 24 * 3600.0)
    admin_user: str | None = _f(None, min_len=1)
    admin_password: str | None = _f(None, secret=True)
    webhook_public_keys: tuple[str, ...] = _f(())  # Standard Webhooks v1a Ed25519 keys, "whpk_<base64>"
    metrics_anonymous: bool = _f(False)  # let Prometheus scrape /metrics without a token
    # Per route class (read, write, worker, stream, auth, webhook, default): "write=6000/60" = 6000 requests
    # per 60 s per principal (or client IP when anonymous), optional burst "write=6000/60/500".
    rate_limits: tuple[str, ...] = _f(())


@dataclass(frozen=True, slots=True)
class MonitoringConfig:
    """Monitor actor sampling and retention."""

    enabled: bool = _f(True)
    sample_interval: float = _f(10.0, min=1.0, max=3600.0)
    retention_days: int = _f(30, min=1, max=3650)
    # YAML file in `actors.monitor.config.settings_from_mapping`'s shape (rules, policies, repeat_interval_s,
    # channels, ...), relative to the cwd; it overlays the defaults and the two keys above.
    rules_file: Path | None = field(default=None)
    metrics_refresh_interval: float = _f(5.0, min=0.05, max=3600.0)  # queue/lock gauges of /metrics (s)
    metrics_max_cores: int = _f(200, min=1, max=100_000)  # cores exported per gauge; the rest sum to "other"


@dataclass(frozen=True, slots=True)
class NotificationsConfig:
    """Where alerts go. URLs may embed credentials, so they count as secrets (never logged)."""

    slack_webhook_url: str | None = _f(None, secret=True)
    webhook_url: str | None = _f(None, secret=True)
    webhook_secret: str | None = _f(None, secret=True)
    smtp_host: str | None = _f(None, min_len=1)
    smtp_port: int = _f(587, min=1, max=65535)
    email_from: str | None = _f(None, min_len=3)
    email_to: tuple[str, ...] = _f(())
    smtp_security: str = _f("starttls", choices=("starttls", "ssl", "none"))
    smtp_username: str | None = _f(None, min_len=1)
    smtp_password: str | None = _f(None, secret=True)


@dataclass(frozen=True, slots=True)
class FeedsConfig:
    """Live event feeds (SSE, websockets) and the GC tuning that keeps their fan-out cheap (DESIGN §7)."""

    heartbeat: float = _f(15.0, min=0.01, max=3600.0)  # seconds of silence before an SSE comment / ws ping
    # Events a subscriber may fall behind before it is cut off. One group commit publishes all its events
    # at once (two 1,000-task batches = 2,000), so this must stay well above a commit's worth.
    buffer: int = _f(8192, min=1, max=1_000_000)
    replay_page: int = _f(500, min=1, max=10_000)  # events read from the store per replay query
    ws_max_in_flight: int = _f(64, min=1, max=10_000)  # pipelined requests per /ws/dispatch connection
    # Flush period: an SSE stream or /ws/events subscription woken by a live event writes at the next
    # tick (at most this many seconds later), so events arriving meanwhile share its write: a write costs
    # about the same whatever it carries, so fewer, larger writes cut the CPU per delivery. 0: at once.
    coalesce: float = _f(0.05, min=0.0, max=5.0)
    gc_freeze: bool = _f(True)  # `orch serve`: gc.freeze() once the node has started
    gc_gen0_threshold: int = _f(100_000, min=0, max=10_000_000)  # 0 keeps Python's default
    # Seconds between checks for a full collection of closed connections' garbage (0: never sweep).
    gc_sweep_interval: float = _f(2.0, min=0.0, max=3600.0)


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """Structured logging (JSON lines on stderr)."""

    level: str = _f("INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), upper=True)


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "database": DatabaseConfig,
    "security": SecurityConfig,
    "monitoring": MonitoringConfig,
    "notifications": NotificationsConfig,
    "logging": LoggingConfig,
    "feeds": FeedsConfig,
}

ENV_SHORTCUTS: Mapping[str, str] = {
    "ORCH_DATA_DIR": "database.data_dir",
    "ORCH_DB_PATH": "database.path",
    "ORCH_HOST": "server.host",
    "ORCH_PORT": "server.port",
    "ORCH_JWT_SECRET": "security.jwt_secret",
    "ORCH_WEBHOOK_SECRET": "security.webhook_secret",
    "ORCH_ADMIN_USER": "security.admin_user",
    "ORCH_ADMIN_PASSWORD": "security.admin_password",
    "ORCH_DEV_MODE": "security.dev_mode",
    "ORCH_LOG_LEVEL": "logging.level",
}


@dataclass(frozen=True, slots=True)
class Config:
    """The whole, validated node configuration."""

    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    feeds: FeedsConfig = field(default_factory=FeedsConfig)
    source: Path | None = None

    def secret_values(self) -> list[str]:
        """Every configured secret value, for the log redaction guard."""
        found: list[str] = []
        for name in _SECTIONS:
            section = getattr(self, name)
            for f in fields(section):
                value = getattr(section, f.name)
                if f.metadata.get("secret") and isinstance(value, str) and value:
                    found.append(value)
        return found


def load_config(
    path: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Load and validate the configuration; raise `ConfigError` naming every bad key.

    `path` None means: `$ORCH_CONFIG` if set, else no file (defaults). `overrides` maps dotted keys
    ("server.port") to values and wins over everything; None values in it are ignored.
    """
    env = os.environ if env is None else env
    if path is None and env.get("ORCH_CONFIG"):
        path = env["ORCH_CONFIG"]
    source = Path(path) if path is not None else None
    raw = _read_file(source, env) if source is not None else {}
    _apply_env(raw, env)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set(raw, dotted, value)
    return _build(raw, source)


def _read_file(source: Path, env: Mapping[str, str]) -> dict[str, Any]:
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {source}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {source}: {exc}") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{source}: invalid YAML{where}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{source}: must be a mapping of sections, got {type(loaded).__name__}")
    problems: list[str] = []
    result = {str(k): _substitute(v, str(k), env, problems) for k, v in loaded.items()}
    if problems:
        raise ConfigError.many(problems)
    return result


_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute(value: Any, key: str, env: Mapping[str, str], problems: list[str]) -> Any:
    """Expand `${VAR}` in string scalars only, so a variable can never inject YAML structure."""
    if isinstance(value, dict):
        return {str(k): _substitute(v, f"{key}.{k}", env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, f"{key}[{i}]", env, problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def expand(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        current = env.get(name)
        if current:
            return current
        if default is not None:
            return default
        if current is None:
            problems.append(f"{key}: environment variable {name} is not set (use ${{{name}:-default}})")
        return ""

    return _VAR.sub(expand, value)


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for var, dotted in ENV_SHORTCUTS.items():
        if env.get(var):
            _set(raw, dotted, env[var])
    for var, value in env.items():
        if not var.startswith("ORCH_") or "__" not in var or not value:
            continue
        section, _, key = var[len("ORCH_") :].partition("__")
        _set(raw, f"{section.lower()}.{key.lower()}", value)


def _set(raw: dict[str, Any], dotted: str, value: Any) -> None:
    section, _, key = dotted.partition(".")
    current = raw.get(section)
    if not isinstance(current, dict):
        # A non-mapping section from the file is reported by _build; an override must not hide it.
        if current is not None:
            return
        current = raw[section] = {}
    current[key] = value


def _build(raw: Mapping[str, Any], source: Path | None) -> Config:
    problems: list[str] = []
    unknown = sorted(set(raw) - set(_SECTIONS))
    problems += [f"{name}: unknown section (known: {', '.join(_SECTIONS)})" for name in unknown]
    built: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        section_raw = raw.get(name) or {}
        if not isinstance(section_raw, Mapping):
            problems.append(f"{name}: must be a mapping, got {type(section_raw).__name__}")
            continue
        built[name] = build_section(cls, name, section_raw, problems)
    problems += _cross_checks(built)
    if problems:
        raise ConfigError.many(problems)
    return Config(source=source, **built)


def _cross_checks(built: Mapping[str, Any]) -> list[str]:
    security = built.get("security")
    if security is None:
        return []
    if (security.admin_user is None) != (security.admin_password is None):
        return ["security.admin_password: admin_user and admin_password must be set together"]
    return []
