"""Rate limits, webhooks and the audit trail through the actor."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from actors.security.messages import (
    Action,
    Authorize,
    ListAudit,
    RateLimited,
    SecurityMsg,
    Throttle,
    TokenPair,
    Unauthenticated,
    UserInfo,
    VerifyAudit,
    VerifyWebhook,
)
from runtime import ActorRef

Ref = ActorRef[SecurityMsg]
CreateUserFn = Callable[..., Awaitable[UserInfo]]
LoginFn = Callable[..., Awaitable[TokenPair]]
WEBHOOK_SECRET = b"webhook-secret-0123456789abcdef"  # as configured in conftest.make_settings


async def test_rate_limit_refusal_carries_429_and_the_ietf_headers(
    open_security: Any, create_user: CreateUserFn, login: LoginFn
) -> None:
    async with open_security() as ref:
        await create_user(ref)
        token = (await login(ref)).access_token
        remaining = [
            (await ref.ask(lambda r: Authorize(token, Action.TASK_READ, "tight", "ip", r))).rate.remaining
            for _ in range(3)
        ]
        with pytest.raises(RateLimited) as info:
            await ref.ask(lambda r: Authorize(token, Action.TASK_READ, "tight", "ip", r))
        # another route class has its own budget
        await ref.ask(lambda r: Authorize(token, Action.TASK_READ, "read", "ip", r))
    assert remaining == [2, 1, 0]
    headers = dict(info.value.headers)
    assert info.value.status == 429
    assert headers["Retry-After"] == "20"
    assert headers["RateLimit-Policy"] == '"tight";q=3;w=60'
    assert headers["RateLimit"].startswith('"tight";r=0;t=')


async def test_rate_limits_are_per_principal_not_per_ip(
    open_security: Any, create_user: CreateUserFn, login: LoginFn
) -> None:
    async with open_security() as ref:
        await create_user(ref, "alice")
        await create_user(ref, "bob")
        alice = (await login(ref, "alice")).access_token
        bob = (await login(ref, "bob")).access_token
        for _ in range(3):
            await ref.ask(lambda r: Authorize(alice, Action.TASK_READ, "tight", "shared-nat", r))
        await ref.ask(lambda r: Authorize(bob, Action.TASK_READ, "tight", "shared-nat", r))


async def test_anonymous_throttle_is_per_client_key(open_security: Any) -> None:
    async with open_security() as ref:
        for _ in range(3):
            await ref.ask(lambda r: Throttle("tight", "1.1.1.1", r))
        with pytest.raises(RateLimited):
            await ref.ask(lambda r: Throttle("tight", "1.1.1.1", r))
        decision = await ref.ask(lambda r: Throttle("tight", "2.2.2.2", r))
    assert decision.allowed and decision.remaining == 2


async def test_login_attempts_are_rate_limited_per_client(
    open_security: Any, create_user: CreateUserFn, login: LoginFn
) -> None:
    from actors.security.ratelimit import RatePolicy

    limits = {"default": RatePolicy("default", 100, 60.0), "auth": RatePolicy("auth", 2, 60.0)}
    async with open_security(rate_limits=limits) as ref:
        await create_user(ref)
        await login(ref, client="c1")
        await login(ref, client="c1")
        with pytest.raises(RateLimited):
            await login(ref, client="c1")
        await login(ref, client="c2")


async def test_webhook_verification_through_the_actor(open_security: Any, clock: Any, db_path: Path) -> None:
    body = b'{"task":"t-1","status":"done"}'
    t = int(clock.now)
    sig = hmac.new(WEBHOOK_SECRET, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    headers = {"X-Signature": f"t={t},v1={sig}"}
    async with open_security() as ref:
        ok = await ref.ask(lambda r: VerifyWebhook(headers, body, "9.9.9.9", r))
        replay = await ref.ask(lambda r: VerifyWebhook(headers, body, "9.9.9.9", r))
        bad = await ref.ask(lambda r: VerifyWebhook({"X-Signature": "t=abc,v1=00"}, body, "9.9.9.9", r))
    assert (ok.ok, replay.status, bad.status) == (True, 409, 400)
    conn = sqlite3.connect(db_path)
    reasons = [r[0] for r in conn.execute("SELECT data FROM security_events WHERE type = 'webhook_rejected'")]
    conn.close()
    assert len(reasons) == 2 and any("replayed" in r for r in reasons)


async def test_audit_chain_verifies_and_detects_tampering(
    open_security: Any, create_user: CreateUserFn, login: LoginFn, db_path: Path
) -> None:
    async with open_security() as ref:
        await create_user(ref)
        await login(ref)
        with pytest.raises(Unauthenticated):
            await login(ref, password="wrong wrong")
        report = await ref.ask(lambda r: VerifyAudit(r))
        rows = await ref.ask(lambda r: ListAudit(r, subject="alice"))
    assert report.ok and report.checked >= 3
    assert [r.type for r in rows] == ["user_created", "login_succeeded", "login_failed"]
    assert all(r.at.endswith("Z") for r in rows)

    conn = sqlite3.connect(db_path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE security_events SET subject = 'mallory' WHERE id = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM security_events WHERE id = 2")
    # someone with write access to the file drops the trigger and edits a row
    conn.execute("DROP TRIGGER security_events_no_update")
    conn.execute('UPDATE security_events SET data = \'{"reason":"nothing to see"}\' WHERE id = 3')
    conn.commit()
    conn.close()
    async with open_security() as ref:
        report = await ref.ask(lambda r: VerifyAudit(r))
    assert (report.ok, report.first_bad_id) == (False, 3)


async def test_invalid_token_floods_are_cut_off_per_client_and_audited_sampled(
    open_security: Any, create_user: CreateUserFn, login: LoginFn, db_path: Path
) -> None:
    statuses: list[int] = []
    async with open_security() as ref:
        await create_user(ref)
        good = (await login(ref)).access_token
        await ref.ask(lambda r: Authorize(good, Action.TASK_READ, "read", "5.5.5.5", r))  # now cached
        for i in range(200):
            forged = f"{good}x{i}"
            try:
                await ref.ask(lambda r, t=forged: Authorize(t, Action.TASK_READ, "read", "5.5.5.5", r))
            except (Unauthenticated, RateLimited) as exc:
                statuses.append(exc.status)
        await ref.ask(
            lambda r: Authorize(good, Action.TASK_READ, "read", "5.5.5.5", r)
        )  # known token still ok
        with pytest.raises(Unauthenticated):  # another client is not affected
            await ref.ask(lambda r: Authorize("junk", Action.TASK_READ, "read", "6.6.6.6", r))
    assert statuses == [401] * 60 + [429] * 140
    conn = sqlite3.connect(db_path)
    (count,) = conn.execute("SELECT count(*) FROM security_events WHERE type = 'token_rejected'").fetchone()
    conn.close()
    assert 1 <= count <= 12


async def test_webhook_verification_can_take_the_clients_rate_limit_in_the_same_ask(
    open_security: Any, clock: Any
) -> None:
    def delivery(n: int) -> tuple[dict[str, str], bytes]:
        body = f'{{"n":{n}}}'.encode()
        t = int(clock.now)
        sig = hmac.new(WEBHOOK_SECRET, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return {"X-Signature": f"t={t},v1={sig}"}, body

    from actors.security.ratelimit import RatePolicy

    limits = {"default": RatePolicy("default", 100, 60.0), "webhook": RatePolicy("webhook", 1, 60.0)}
    first, second = delivery(1), delivery(2)
    async with open_security(rate_limits=limits) as ref:
        ok = await ref.ask(lambda r: VerifyWebhook(*first, "9.9.9.9", r, throttle="webhook"))
        with pytest.raises(RateLimited):
            await ref.ask(lambda r: VerifyWebhook(*second, "9.9.9.9", r, throttle="webhook"))
        other_client = await ref.ask(lambda r: VerifyWebhook(*second, "8.8.8.8", r, throttle="webhook"))
        # The limit is the one Throttle spends: the client is still over it.
        with pytest.raises(RateLimited):
            await ref.ask(lambda r: Throttle("webhook", "9.9.9.9", r))
    # The refused delivery was never verified, so its signature was not remembered as seen.
    assert (ok.ok, other_client.ok) == (True, True)
