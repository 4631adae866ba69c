"""The security actor end to end on a real SQLite file: logins, lockout, refresh rotation, logout."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import trio

from actors.security import passwords
from actors.security.messages import (
    Action,
    Busy,
    Forbidden,
    InvalidRequest,
    LockedOut,
    Logout,
    Refresh,
    Role,
    Unauthenticated,
)
from actors.storage import StoredEvent

from .actor_helpers import CreateUserFn, LoginFn, authorize


async def test_login_then_authorise_an_allowed_action(
    open_security: Any, create_user: CreateUserFn, login: LoginFn
) -> None:
    async with open_security() as ref:
        await create_user(ref, "Alice", role=Role.OPERATOR)
        pair = await login(ref, "ALICE")
        principal = await authorize(ref, pair.access_token, Action.TASK_DISPATCH, "write")
    assert (principal.sub, principal.role, principal.kind) == ("alice", Role.OPERATOR, "user")
    assert principal.rate.allowed and principal.rate.remaining == 999


async def test_role_without_the_action_gets_forbidden(
    open_security: Any, create_user: CreateUserFn, login: LoginFn
) -> None:
    async with open_security() as ref:
        await create_user(ref, "victor", role=Role.VIEWER)
        pair = await login(ref, "victor")
        with pytest.raises(Forbidden) as info:
            await authorize(ref, pair.access_token, Action.TASK_CANCEL)
    assert info.value.status == 403


@pytest.mark.parametrize("token", [None, "", "garbage", "a.b.c"])
async def test_missing_or_garbage_token_is_unauthenticated(open_security: Any, token: str | None) -> None:
    async with open_security() as ref:
        with pytest.raises(Unauthenticated) as info:
            await authorize(ref, token)
    assert info.value.status == 401
    assert ("WWW-Authenticate", 'Bearer error="invalid_token"') in info.value.headers


async def test_wrong_password_and_unknown_user_fail_the_same_way(
    open_security: Any, create_user: CreateUserFn, login: LoginFn
) -> None:
    async with open_security() as ref:
        await create_user(ref)
        with pytest.raises(Unauthenticated) as wrong:
            await login(ref, password="not the password")
        with pytest.raises(Unauthenticated) as unknown:
            await login(ref, name="mallory")
    assert wrong.value.message == unknown.value.message == "invalid username or password"


async def test_over_long_password_at_login_is_a_clean_401(
    open_security: Any, create_user: CreateUserFn, login: LoginFn
) -> None:
    async with open_security() as ref:
        await create_user(ref)
        with pytest.raises(Unauthenticated):
            await login(ref, password="x" * 500)


async def test_weak_or_over_long_password_is_refused_at_creation(
    open_security: Any, create_user: CreateUserFn
) -> None:
    async with open_security() as ref:
        with pytest.raises(InvalidRequest, match="72 bytes"):
            await create_user(ref, password="x" * 73)
        with pytest.raises(InvalidRequest, match="at least 8"):
            await create_user(ref, password="short")
        with pytest.raises(InvalidRequest, match="system tokens"):
            await create_user(ref, role=Role.SYSTEM)


async def test_repeated_failures_lock_the_account_and_publish_it(
    open_security: Any, create_user: CreateUserFn, login: LoginFn, feed: list[StoredEvent]
) -> None:
    async with open_security() as ref:  # lockout after 3 failures in these settings
        await create_user(ref)
        for _ in range(3):
            with pytest.raises(Unauthenticated):
                await login(ref, password="wrong password", client="6.6.6.6")
        with pytest.raises(LockedOut) as locked:
            await login(ref, client="6.6.6.6")  # even the right password
    assert locked.value.status == 423
    assert dict(locked.value.headers)["Retry-After"] == "60"
    assert "locked" in locked.value.message
    assert any(e.type == "security.account_locked" and e.subject == "alice" for e in feed)


async def test_known_client_still_gets_in_while_an_attacker_locked_the_account(
    open_security: Any, create_user: CreateUserFn, login: LoginFn
) -> None:
    async with open_security() as ref:
        await create_user(ref)
        await login(ref, client="home")
        for _ in range(3):
            with pytest.raises(Unauthenticated):
                await login(ref, password="guess guess", client="attacker")
        with pytest.raises(LockedOut):
            await login(ref, client="attacker")
        assert (await login(ref, client="home")).access_token


async def test_refresh_rotates_and_reuse_revokes_the_family(
    open_security: Any, create_user: CreateUserFn, login: LoginFn, feed: list[StoredEvent]
) -> None:
    async with open_security() as ref:
        await create_user(ref)
        first = await login(ref)
        second = await ref.ask(lambda r: Refresh(first.refresh_token, "10.0.0.1", r))
        assert second.refresh_token != first.refresh_token
        await authorize(ref, second.access_token)
        with pytest.raises(Unauthenticated, match="reuse"):
            await ref.ask(lambda r: Refresh(first.refresh_token, "10.0.0.1", r))
        with pytest.raises(Unauthenticated, match="revoked"):
            await ref.ask(lambda r: Refresh(second.refresh_token, "10.0.0.1", r))
    assert any(e.type == "security.refresh_reuse_detected" for e in feed)


async def test_access_token_is_not_a_refresh_token_and_vice_versa(
    open_security: Any, create_user: CreateUserFn, login: LoginFn
) -> None:
    async with open_security() as ref:
        await create_user(ref)
        pair = await login(ref)
        with pytest.raises(Unauthenticated, match="wrong token type"):
            await ref.ask(lambda r: Refresh(pair.access_token, "10.0.0.1", r))
        with pytest.raises(Unauthenticated, match="wrong token type"):
            await authorize(ref, pair.refresh_token)


async def test_logout_revokes_the_access_token_and_the_refresh_family(
    open_security: Any, create_user: CreateUserFn, login: LoginFn
) -> None:
    async with open_security() as ref:
        await create_user(ref)
        pair = await login(ref)
        other = await login(ref)  # another session of the same user stays valid
        await ref.ask(lambda r: Logout(pair.access_token, pair.refresh_token, "10.0.0.1", r))
        with pytest.raises(Unauthenticated, match="revoked"):
            await authorize(ref, pair.access_token)
        with pytest.raises(Unauthenticated, match="revoked"):
            await ref.ask(lambda r: Refresh(pair.refresh_token, "10.0.0.1", r))
        await authorize(ref, other.access_token)


async def test_expired_access_token_is_refused(
    open_security: Any, create_user: CreateUserFn, login: LoginFn, clock: Any
) -> None:
    async with open_security(access_ttl=60.0, leeway=5.0) as ref:
        await create_user(ref)
        pair = await login(ref)
        clock.advance(64)
        await authorize(ref, pair.access_token)
        clock.advance(2)
        with pytest.raises(Unauthenticated, match="expired"):
            await authorize(ref, pair.access_token)


async def test_refresh_never_extends_the_absolute_session_lifetime(
    open_security: Any, create_user: CreateUserFn, login: LoginFn, clock: Any
) -> None:
    async with open_security(refresh_ttl=1000.0) as ref:
        await create_user(ref)
        pair = await login(ref)
        clock.advance(600)
        again = await ref.ask(lambda r: Refresh(pair.refresh_token, "10.0.0.1", r))
    assert again.refresh_expires_at == pytest.approx(pair.refresh_expires_at, abs=0.01)


async def test_logins_are_bounded_and_never_stall_authorisation(
    open_security: Any, create_user: CreateUserFn, login: LoginFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = threading.Event()  # bcrypt checks block until the authorisations are done: no timing involved
    real_check = passwords._safe_checkpw

    def blocked_check(raw: bytes, stored: bytes) -> bool:
        held.wait(10)
        return real_check(raw, stored)

    async with open_security(bcrypt_cost=4, bcrypt_threads=1, max_pending_logins=2) as ref:
        await create_user(ref)
        pair = await login(ref)
        monkeypatch.setattr(passwords, "_safe_checkpw", blocked_check)
        outcomes: list[str] = []
        refused = trio.Event()

        async def slow_login() -> None:
            try:
                await login(ref)
                outcomes.append("ok")
            except Busy:
                outcomes.append("busy")
                refused.set()

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(slow_login)
            with trio.fail_after(5):  # a login beyond the two pending ones is refused at once
                await refused.wait()
            with trio.fail_after(5):  # would hang if authorisation waited behind the blocked bcrypt checks
                for _ in range(100):
                    await authorize(ref, pair.access_token)
            still_pending = list(outcomes)
            held.set()
    assert still_pending == ["busy"]  # the two logins were still inside bcrypt all along
    assert sorted(outcomes) == ["busy", "ok", "ok"]
