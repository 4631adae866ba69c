"""Login, refresh and logout.

Each operation is split so the actor never waits while handling a message: the synchronous part (checks
and in-memory state changes, in message order) runs in `handle`; bcrypt runs in a spawned task; the
commit is queued and the asker is answered only once it is durable.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import replace

import trio

from actors.security.guard import Guard
from actors.security.lockout import LockoutTracker
from actors.security.messages import Busy, LockedOut, TokenPair, Unauthenticated
from actors.security.passwords import PasswordHasher
from actors.security.state import REFRESH_TOKENS, SecurityState
from actors.security.store import Change, Family, Revocation, UserRecord
from actors.security.tokens import TokenType
from runtime import Reply

NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
BAD_CREDENTIALS = "invalid username or password"


def normalise_name(name: str) -> str:
    """User and principal names are case-insensitive: compared and stored in lower case."""
    return name.strip().lower()


class Sessions:
    """Password logins with lockout, rotating refresh tokens with reuse detection, logout."""

    def __init__(
        self, state: SecurityState, guard: Guard, hasher: PasswordHasher, lockout: LockoutTracker
    ) -> None:
        self._state = state
        self._guard = guard
        self._hasher = hasher
        self._lockout = lockout
        self._pending = 0

    # ------------------------------------------------------------------------------------------ login
    def begin_login(self, username: str, client: str) -> str:
        """Synchronous gate of a login: rate limit, lockout, capacity. Returns the normalised name."""
        name = normalise_name(username)
        self._guard.take("auth", ("ip", client), client)
        if not NAME.fullmatch(name):
            raise Unauthenticated(BAD_CREDENTIALS)
        lock = self._lockout.check(name, client, trio.current_time())
        if lock.locked:
            self._guard.sampled(
                "login_refused", name, client, {"lock": lock.scope}, sample_key=(name, client)
            )
            raise LockedOut(lock.scope, lock.retry_after)
        if self._pending >= self._state.settings.max_pending_logins:
            raise Busy()
        self._pending += 1
        return name

    async def finish_login(self, name: str, password: str, client: str, reply: Reply[TokenPair]) -> None:
        """The bcrypt part (in a thread) and the outcome; answers `reply`. Spawned after `begin_login`."""
        try:
            user = self._state.users.get(name)
            ok = await self._hasher.verify(password, user.password_hash if user else None)
        finally:
            self._pending -= 1
        current = self._state.users.get(name)
        if not ok or user is None or current is None or current.disabled:
            reply.fail(Unauthenticated(BAD_CREDENTIALS))
            self._login_failed(name, client, known=user is not None, password_ok=ok)
            return
        if current.password_hash != user.password_hash:  # reset while we were hashing
            reply.fail(Unauthenticated(BAD_CREDENTIALS))
            return
        self._lockout.record_success(name, client, trio.current_time())
        pair, family = self._issue(current, None)
        self._state.families[family.family] = family
        entry = self._guard.entry("login_succeeded", name, client, {"family": family.family})
        self._guard.commit(Change(families=(family,), audit=(entry,)), lambda: reply.send(pair))

    def _login_failed(self, name: str, client: str, *, known: bool, password_ok: bool) -> None:
        reason = "unknown user" if not known else ("account disabled" if password_ok else "bad password")
        lock = self._lockout.record_failure(name, client, trio.current_time())
        audit = [self._guard.entry("login_failed", name, client, {"reason": reason})]
        if lock.locked:
            data = {"scope": lock.scope, "seconds": round(lock.retry_after)}
            audit.append(self._guard.entry("account_locked", name, client, data, publish=True))
        self._guard.commit(Change(audit=tuple(audit)))

    # ------------------------------------------------------------------------------------------ refresh
    def refresh(self, token: str, client: str, reply: Reply[TokenPair]) -> None:
        """Rotate a refresh token; reuse of an old one revokes the whole family."""
        self._guard.take("auth", ("ip", client), client)
        now = self._guard.clock()
        try:
            claims = self._state.claims(token, now=now, expected=REFRESH_TOKENS)
        except Unauthenticated as exc:
            self._guard.sampled("refresh_rejected", None, client, {"reason": exc.message}, sample_key=client)
            raise
        family = self._state.families.get(claims.family or "")
        if family is None or family.revoked_at is not None or family.user != claims.sub:
            self._guard.audit("refresh_rejected", claims.sub, client, {"reason": "family revoked"})
            raise Unauthenticated("refresh token revoked")
        user = self._state.check_user(claims)
        if claims.jti != family.current_jti:
            revoked = replace(family, revoked_at=now)
            self._state.families[family.family] = revoked
            data = {"family": family.family}
            entry = self._guard.entry("refresh_reuse_detected", claims.sub, client, data, publish=True)
            self._guard.commit(Change(families=(revoked,), audit=(entry,)))
            raise Unauthenticated("refresh token reuse detected: the session was revoked")
        pair, rotated = self._issue(user, family)
        self._state.families[family.family] = rotated
        entry = self._guard.entry("token_refreshed", user.name, client, {"family": family.family})
        self._guard.commit(Change(families=(rotated,), audit=(entry,)), lambda: reply.send(pair))

    def _issue(self, user: UserRecord, family: Family | None) -> tuple[TokenPair, Family]:
        s = self._state.settings
        now = self._guard.clock()
        if family is None:
            fid = secrets.token_urlsafe(16)
            family = Family(fid, user.name, "", now, now + s.refresh_ttl)
        codec = self._state.codec
        sub, role, floor = user.name, user.role, user.tokens_valid_after
        access, a = codec.issue(
            sub=sub, role=role, typ=TokenType.ACCESS, ttl=s.access_ttl, now=now, iat_floor=floor
        )
        ttl = max(1.0, family.expires_at - now)  # absolute session lifetime: rotation never extends it
        refresh, r = codec.issue(
            sub=sub, role=role, typ=TokenType.REFRESH, ttl=ttl, now=now, family=family.family, iat_floor=floor
        )
        pair = TokenPair(access, a.exp, refresh, r.exp, user.role)
        return pair, replace(family, current_jti=r.jti)

    # ------------------------------------------------------------------------------------------ logout
    def logout(self, access_token: str, refresh_token: str | None, client: str, reply: Reply[None]) -> None:
        """Revoke the access token's jti and, if given and owned by the same user, the refresh family."""
        now = self._guard.clock()
        caller = self._state.caller(access_token, now)
        claims = caller.claims
        revocation = Revocation(claims.jti, claims.exp, now, "logout")
        self._state.revocations[claims.jti] = revocation
        families: tuple[Family, ...] = ()
        if refresh_token:
            families = self._revoke_family_of(refresh_token, claims.sub, now)
        entry = self._guard.entry(
            "logout", claims.sub, client, {"jti": claims.jti, "families": len(families)}
        )
        change = Change(revocations=(revocation,), families=families, audit=(entry,))
        self._guard.commit(change, lambda: reply.send(None))

    def _revoke_family_of(self, refresh_token: str, sub: str, now: float) -> tuple[Family, ...]:
        try:
            claims = self._state.claims(refresh_token, now=now, expected=REFRESH_TOKENS)
        except Unauthenticated:
            return ()
        family = self._state.families.get(claims.family or "")
        if family is None or family.user != sub or family.revoked_at is not None:
            return ()
        revoked = replace(family, revoked_at=now)
        self._state.families[family.family] = revoked
        return (revoked,)
