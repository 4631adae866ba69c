"""Administration through the actor: users, roles, password resets, system tokens, revocation, restarts."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.security.messages import (
    Action,
    ChangeRole,
    Conflict,
    DisableUser,
    IssueSystemToken,
    ListSystemTokens,
    ListUsers,
    NotFound,
    Refresh,
    ResetPassword,
    RevokeToken,
    Role,
    SystemToken,
    Unauthenticated,
)
from actors.storage import StoredEvent

from .actor_helpers import CreateUserFn, LoginFn, Ref, authorize


async def issue(ref: Ref, name: str = "worker-1", ttl: float | None = None) -> SystemToken:
    return await ref.ask(lambda r: IssueSystemToken(name, "admin:root", r, ttl))


async def test_users_are_listed_sorted_without_hashes(open_security: Any, create_user: CreateUserFn) -> None:
    async with open_security() as ref:
        await create_user(ref, "zoe", role=Role.VIEWER)
        await create_user(ref, "adam", role=Role.ADMIN)
        users = await ref.ask(lambda r: ListUsers(r))
        with pytest.raises(Conflict):
            await create_user(ref, "ZOE")
    assert [(u.name, u.role, u.disabled) for u in users] == [
        ("adam", Role.ADMIN, False),
        ("zoe", Role.VIEWER, False),
    ]
    assert "hash" not in repr(users)


async def test_concurrent_creates_of_one_name_make_one_user(
    open_security: Any, create_user: CreateUserFn
) -> None:
    outcomes: list[str] = []

    async def attempt() -> None:
        try:
            await create_user(ref, "dup")
            outcomes.append("created")
        except Conflict:
            outcomes.append("conflict")

    async with open_security() as ref:
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(attempt)
    assert sorted(outcomes) == ["conflict"] * 4 + ["created"]


async def test_disabling_a_user_revokes_its_tokens_and_blocks_login(
    open_security: Any, create_user: CreateUserFn, login: LoginFn
) -> None:
    async with open_security() as ref:
        await create_user(ref)
        pair = await login(ref)
        info = await ref.ask(lambda r: DisableUser("alice", "admin:root", r))
        assert info.disabled
        with pytest.raises(Unauthenticated):
            await authorize(ref, pair.access_token)
        with pytest.raises(Unauthenticated):
            await ref.ask(lambda r: Refresh(pair.refresh_token, "10.0.0.1", r))
        with pytest.raises(Unauthenticated):
            await login(ref)
        await ref.ask(lambda r: DisableUser("alice", "admin:root", r, disabled=False))
        await authorize(ref, (await login(ref)).access_token)


async def test_password_reset_revokes_old_tokens_and_the_new_password_works(
    open_security: Any, create_user: CreateUserFn, login: LoginFn
) -> None:
    async with open_security() as ref:
        await create_user(ref)
        old = await login(ref)
        await ref.ask(lambda r: ResetPassword("alice", "brand new secret", "admin:root", r))
        with pytest.raises(Unauthenticated, match="revoked"):
            await authorize(ref, old.access_token)
        with pytest.raises(Unauthenticated):
            await login(ref)
        fresh = await login(ref, password="brand new secret")
        await authorize(ref, fresh.access_token)
        with pytest.raises(NotFound):
            await ref.ask(lambda r: ResetPassword("nobody", "brand new secret", "admin:root", r))


async def test_role_change_revokes_tokens_issued_under_the_old_role(
    open_security: Any, create_user: CreateUserFn, login: LoginFn
) -> None:
    async with open_security() as ref:
        await create_user(ref, role=Role.ADMIN)
        pair = await login(ref)
        await authorize(ref, pair.access_token, Action.USER_MANAGE)
        await ref.ask(lambda r: ChangeRole("alice", Role.VIEWER, "admin:root", r))
        with pytest.raises(Unauthenticated):
            await authorize(ref, pair.access_token, Action.TASK_READ)
        assert (await authorize(ref, (await login(ref)).access_token)).role == Role.VIEWER


async def test_system_token_authorises_the_worker_protocol_until_revoked(open_security: Any) -> None:
    async with open_security() as ref:
        issued = await issue(ref, "gpu-worker-7")
        principal = await authorize(ref, issued.token, Action.WORKER_CLAIM)
        assert (principal.sub, principal.role, principal.kind) == ("gpu-worker-7", Role.SYSTEM, "system")
        listed = await ref.ask(lambda r: ListSystemTokens(r))
        assert [(t.jti, t.name, t.revoked_at) for t in listed] == [(issued.jti, "gpu-worker-7", None)]
        assert issued.token not in repr(listed) and issued.token not in repr(issued)
        await ref.ask(lambda r: RevokeToken(issued.jti, "admin:root", r))
        with pytest.raises(Unauthenticated, match="revoked"):
            await authorize(ref, issued.token, Action.WORKER_CLAIM)
        assert (await ref.ask(lambda r: ListSystemTokens(r)))[0].revoked_at is not None


async def test_system_token_cannot_act_as_a_human(open_security: Any) -> None:
    async with open_security() as ref:
        issued = await issue(ref)
        with pytest.raises(Exception, match="may not"):
            await authorize(ref, issued.token, Action.USER_MANAGE)


async def test_state_survives_a_restart(
    open_security: Any, create_user: CreateUserFn, login: LoginFn
) -> None:
    async with open_security() as ref:
        await create_user(ref)
        pair = await login(ref)
        revoked = await issue(ref, "old-worker")
        kept = await issue(ref, "new-worker")
        await ref.ask(lambda r: RevokeToken(revoked.jti, "admin:root", r))
    async with open_security() as ref:
        await authorize(ref, pair.access_token)
        await authorize(ref, kept.token, Action.WORKER_HEARTBEAT)
        with pytest.raises(Unauthenticated):
            await authorize(ref, revoked.token, Action.WORKER_HEARTBEAT)
        rotated = await ref.ask(lambda r: Refresh(pair.refresh_token, "10.0.0.1", r))
    async with open_security() as ref:
        with pytest.raises(Unauthenticated, match="reuse"):  # the family's rotation was persisted
            await ref.ask(lambda r: Refresh(pair.refresh_token, "10.0.0.1", r))
        with pytest.raises(Unauthenticated, match="revoked"):
            await ref.ask(lambda r: Refresh(rotated.refresh_token, "10.0.0.1", r))


async def test_changes_made_by_another_process_are_picked_up(
    open_security: Any, create_user: CreateUserFn, login: LoginFn
) -> None:
    # The CLI runs its own actor on the same database file; the node's actor reloads periodically.
    async with open_security(reload_interval=0.05) as node:
        await create_user(node)
        pair = await login(node)
        worker = await issue(node, "w1")
        async with open_security() as cli:
            await cli.ask(lambda r: DisableUser("alice", "cli", r))
            await cli.ask(lambda r: RevokeToken(worker.jti, "cli", r))
            await create_user(cli, "bob")
        # The CLI made three commits and a reload may land between two of them: wait for each in turn.
        with trio.fail_after(5):
            await _eventually(lambda: _refused(authorize(node, pair.access_token)))
            await _eventually(lambda: _refused(authorize(node, worker.token, Action.WORKER_CLAIM)))
            await _eventually(lambda: _accepted(login(node, "bob")))  # a reload every 0.05 s: few misses


async def _eventually(check: Callable[[], Awaitable[bool]]) -> None:
    while True:
        if await check():
            return
        await trio.sleep(0.06)


async def _accepted(check: Awaitable[object]) -> bool:
    return not await _refused(check)


async def _refused(check: Awaitable[object]) -> bool:
    try:
        await check
    except Unauthenticated:
        return True
    return False


async def test_admin_changes_are_published_without_secrets(
    open_security: Any, create_user: CreateUserFn, feed: list[StoredEvent]
) -> None:
    async with open_security() as ref:
        await create_user(ref, password="the secret words")
        issued = await issue(ref)
        await ref.ask(lambda r: ResetPassword("alice", "other secret words", "admin:root", r))
    types = [e.type for e in feed]
    assert {"security.user_created", "security.token_issued", "security.password_reset"} <= set(types)
    text = repr([e.as_dict() for e in feed])
    for secret in ("the secret words", "other secret words", issued.token, "$2b$"):
        assert secret not in text


async def test_no_password_hash_or_token_ever_reaches_the_audit_table(
    open_security: Any, create_user: CreateUserFn, login: LoginFn, db_path: Path
) -> None:
    async with open_security() as ref:
        await create_user(ref, password="the secret words")
        pair = await login(ref, password="the secret words")
        with pytest.raises(Unauthenticated):
            await login(ref, password="a wrong guess!")
        issued = await issue(ref)
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT type, subject, client, data FROM security_events").fetchall()
    conn.close()
    text = repr(rows)
    assert {"user_created", "login_succeeded", "login_failed", "token_issued"} <= {r[0] for r in rows}
    for secret in (
        "the secret words",
        "a wrong guess!",
        pair.access_token,
        pair.refresh_token,
        issued.token,
        "$2b$",
    ):
        assert secret not in text


async def test_key_rotation_keeps_old_tokens_valid_through_the_grace_period(
    open_security: Any, create_user: CreateUserFn, login: LoginFn, clock: Any
) -> None:
    from actors.security.settings import JwtKey

    old = JwtKey("k1", secret=b"test-secret-0123456789-abcdefghij")
    new = JwtKey("k2", secret=b"rotated-secret-0123456789-abcdefgh")
    async with open_security() as ref:
        await create_user(ref)
        before = await login(ref)
    grace = JwtKey("k1", secret=old.secret, verify_until=clock.now + 300)
    async with open_security(jwt_keys=(new, grace), active_kid="k2") as ref:
        await authorize(ref, before.access_token)
        after = await login(ref)
        clock.advance(301)
        with pytest.raises(Unauthenticated, match="key retired"):
            await authorize(ref, before.access_token)
        await authorize(ref, after.access_token)
