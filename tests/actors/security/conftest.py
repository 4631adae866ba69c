"""Fixtures for the security actor tests: fast settings (bcrypt cost 4), a fake wall clock, a database."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from actors.security.actor import SecurityActor
from actors.security.messages import CreateUser, Login, Role, SecurityMsg, TokenPair, UserInfo
from actors.security.ratelimit import RatePolicy
from actors.security.settings import JwtKey, LockoutPolicy, SecuritySettings, WebhookSettings
from actors.storage import Database, StoredEvent
from runtime import ActorRef, open_actor

WEBHOOK_SECRET = b"webhook-secret-0123456789abcdef"


class FakeClock:
    """Wall-clock seconds that tests move by hand (tokens, audit timestamps, webhooks)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_settings(**kw: object) -> SecuritySettings:
    base: dict[str, object] = {
        "jwt_keys": (JwtKey("k1", secret=b"test-secret-0123456789-abcdefghij"),),
        "active_kid": "k1",
        "bcrypt_cost": 4,
        "audit_key": b"audit-key-0123456789-abcdefghijkl",
        "lockout": LockoutPolicy(max_failures=3, base_lockout=60, ip_max_failures=50),
        "rate_limits": {
            "default": RatePolicy("default", limit=1000, window=60.0),
            "auth": RatePolicy("auth", limit=1000, window=60.0),
            "tight": RatePolicy("tight", limit=3, window=60.0),
        },
        "webhooks": WebhookSettings(signature_secrets=(WEBHOOK_SECRET,)),
    }
    base.update(kw)
    return SecuritySettings(**base)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "orch.db"


@pytest.fixture
def feed() -> list[StoredEvent]:
    return []


OpenSecurity = Callable[..., AbstractAsyncContextManager[ActorRef[SecurityMsg]]]


@pytest.fixture
def open_security(db_path: Path, clock: FakeClock, feed: list[StoredEvent]) -> OpenSecurity:
    """`async with open_security(**settings_overrides) as ref:` a running actor on a fresh/the same db."""

    @asynccontextmanager
    async def opener(reload_interval: float = 3600.0, **kw: object) -> AsyncIterator[ActorRef[SecurityMsg]]:
        settings = make_settings(**kw)
        async with Database.open(db_path, publish=feed.extend) as db:
            factory = lambda: SecurityActor(db, settings, clock=clock, reload_interval=reload_interval)  # noqa: E731
            async with open_actor(factory, name="security") as ref:
                yield ref

    return opener


async def _create_user(
    ref: ActorRef[SecurityMsg],
    name: str = "alice",
    password: str = "correct horse",
    role: Role = Role.OPERATOR,
) -> UserInfo:
    return await ref.ask(lambda r: CreateUser(name, password, role, "test", r))


async def _login(
    ref: ActorRef[SecurityMsg], name: str = "alice", password: str = "correct horse", client: str = "10.0.0.1"
) -> TokenPair:
    return await ref.ask(lambda r: Login(name, password, client, r))


@pytest.fixture
def create_user() -> Callable[..., Awaitable[UserInfo]]:
    """`await create_user(ref, name="alice", password=..., role=Role.OPERATOR)`."""
    return _create_user


@pytest.fixture
def login() -> Callable[..., Awaitable[TokenPair]]:
    """`await login(ref, name="alice", password=..., client="10.0.0.1")`."""
    return _login
