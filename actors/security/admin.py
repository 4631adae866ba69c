"""User and system-token administration (what the CLI and the admin endpoints call).

Same discipline as sessions: validation and in-memory changes happen synchronously in message order,
bcrypt runs in a spawned task, and the asker is answered once the change is durable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from actors.security.guard import Guard
from actors.security.lockout import LockoutTracker
from actors.security.messages import (
    Conflict,
    InvalidRequest,
    NotFound,
    SystemToken,
    SystemTokenInfo,
    UserInfo,
)
from actors.security.passwords import PasswordHasher, password_problem
from actors.security.roles import Role
from actors.security.sessions import NAME, normalise_name
from actors.security.state import SecurityState
from actors.security.store import AuditEntry, Change, Family, Revocation, SystemTokenRecord, UserRecord
from actors.security.tokens import TokenType, now_ms
from runtime import Reply

HUMAN_ROLES = frozenset({Role.ADMIN, Role.OPERATOR, Role.VIEWER})


def user_info(u: UserRecord) -> UserInfo:
    """The admin view of a user."""
    return UserInfo(u.name, u.role, u.disabled, u.created_at, u.updated_at)


def _bump(user: UserRecord, now: float, **changes: Any) -> UserRecord:
    return replace(user, **changes, updated_at=now, version=user.version + 1)


class Admin:
    """Create/disable/re-role users, reset passwords, issue/list/revoke system tokens."""

    def __init__(
        self, state: SecurityState, guard: Guard, hasher: PasswordHasher, lockout: LockoutTracker
    ) -> None:
        self._state = state
        self._guard = guard
        self._hasher = hasher
        self._lockout = lockout
        self._creating: set[str] = set()

    # ------------------------------------------------------------------------------------------ users
    def begin_create(self, name: str, password: str, role: Role) -> str:
        """Validate a new user; reserves the name until `finish_create`. Returns the normalised name."""
        name = normalise_name(name)
        if not NAME.fullmatch(name):
            raise InvalidRequest(
                "user name must be 1-64 of a-z 0-9 . _ @ - (starting with a letter or digit)"
            )
        if role not in HUMAN_ROLES:
            raise InvalidRequest("users are admin, operator or viewer; workers get system tokens")
        if name in self._state.users or name in self._creating:
            raise Conflict(f"user {name!r} already exists")
        problem = password_problem(password, username=name)
        if problem is not None:
            raise InvalidRequest(problem.reason)
        self._creating.add(name)
        return name

    async def finish_create(
        self, name: str, password: str, role: Role, by: str, reply: Reply[UserInfo]
    ) -> None:
        """Hash (in a thread), store, answer. Spawned after `begin_create`."""
        try:
            hashed = await self._hasher.hash(password, username=name)
        finally:
            self._creating.discard(name)
        if name in self._state.users:  # created meanwhile by the CLI, seen by a reload
            reply.fail(Conflict(f"user {name!r} already exists"))
            return
        now = self._guard.clock()
        user = UserRecord(name, role, hashed, False, 0.0, now, now)
        self._state.users[name] = user
        entry = self._entry("user_created", name, by, {"role": role.value})
        self._guard.commit(Change(users=(user,), audit=(entry,)), lambda: reply.send(user_info(user)))

    def list_users(self) -> tuple[UserInfo, ...]:
        """All users, sorted by name."""
        return tuple(user_info(u) for _, u in sorted(self._state.users.items()))

    def set_disabled(self, name: str, disabled: bool, by: str, reply: Reply[UserInfo]) -> None:
        """Disable (revoking every token) or re-enable a user."""
        user = self._user(name)
        now = self._guard.clock()
        updated = _bump(user, now, disabled=disabled)
        if disabled:
            updated = replace(updated, tokens_valid_after=self._revoke_point(now))
        self._save(updated, "user_disabled" if disabled else "user_enabled", by, {}, reply, revoke=disabled)

    def change_role(self, name: str, role: Role, by: str, reply: Reply[UserInfo]) -> None:
        """Give a user another human role; its tokens are revoked."""
        if role not in HUMAN_ROLES:
            raise InvalidRequest("users are admin, operator or viewer")
        user = self._user(name)
        now = self._guard.clock()
        updated = _bump(user, now, role=role, tokens_valid_after=self._revoke_point(now))
        self._save(
            updated, "role_changed", by, {"from": user.role.value, "to": role.value}, reply, revoke=True
        )

    def begin_reset(self, name: str, password: str) -> str:
        """Validate a password reset; returns the normalised name."""
        user = self._user(name)
        problem = password_problem(password, username=user.name)
        if problem is not None:
            raise InvalidRequest(problem.reason)
        return user.name

    async def finish_reset(self, name: str, password: str, by: str, reply: Reply[UserInfo]) -> None:
        """Hash (in a thread), then store the new hash and revoke every token of the user."""
        hashed = await self._hasher.hash(password, username=name)
        user = self._state.users.get(name)
        if user is None:
            reply.fail(NotFound(f"no user {name!r}"))
            return
        now = self._guard.clock()
        updated = _bump(user, now, password_hash=hashed, tokens_valid_after=self._revoke_point(now))
        self._lockout.forget_user(name)
        self._save(updated, "password_reset", by, {}, reply, revoke=True)

    def _save(
        self,
        user: UserRecord,
        event: str,
        by: str,
        data: dict[str, str],
        reply: Reply[UserInfo],
        *,
        revoke: bool,
    ) -> None:
        self._state.users[user.name] = user
        families = self._revoke_families(user.name) if revoke else ()
        entry = self._entry(event, user.name, by, data)
        change = Change(users=(user,), families=families, audit=(entry,))
        self._guard.commit(change, lambda: reply.send(user_info(user)))

    def _revoke_families(self, name: str) -> tuple[Family, ...]:
        now = self._guard.clock()
        revoked = tuple(
            replace(f, revoked_at=now)
            for f in self._state.families.values()
            if f.user == name and f.revoked_at is None
        )
        for f in revoked:
            self._state.families[f.family] = f
        return revoked

    def _user(self, name: str) -> UserRecord:
        user = self._state.users.get(normalise_name(name))
        if user is None:
            raise NotFound(f"no user {normalise_name(name)!r}")
        return user

    @staticmethod
    def _revoke_point(now: float) -> float:
        # Tokens carry iat floored to the ms; everything issued up to and including this ms is revoked.
        return now_ms(now) + 0.001

    # ------------------------------------------------------------------------------------------ tokens
    def issue_system_token(self, name: str, by: str, ttl: float | None, reply: Reply[SystemToken]) -> None:
        """A long-lived token for a worker/integration; the token is in the reply only, never stored."""
        name = normalise_name(name)
        if not NAME.fullmatch(name):
            raise InvalidRequest("principal name must be 1-64 of a-z 0-9 . _ @ -")
        s = self._state.settings
        lifetime = s.system_token_ttl if ttl is None else ttl
        if not 0 < lifetime <= s.system_token_ttl:
            raise InvalidRequest(f"ttl must be within (0, {s.system_token_ttl:.0f}] seconds")
        now = self._guard.clock()
        token, claims = self._state.codec.issue(
            sub=name, role=Role.SYSTEM, typ=TokenType.SYSTEM, ttl=lifetime, now=now
        )
        record = SystemTokenRecord(claims.jti, name, by, now, claims.exp)
        self._state.system_tokens[claims.jti] = record
        entry = self._entry(
            "token_issued", name, by, {"jti": claims.jti, "kind": "system", "expires": claims.exp}
        )
        result = SystemToken(token, claims.jti, name, claims.exp)
        self._guard.commit(Change(system_tokens=(record,), audit=(entry,)), lambda: reply.send(result))

    def list_system_tokens(self) -> tuple[SystemTokenInfo, ...]:
        """System tokens not yet expired (revoked ones included), oldest first."""
        records = sorted(self._state.system_tokens.values(), key=lambda r: (r.created_at, r.jti))
        return tuple(
            SystemTokenInfo(r.jti, r.name, r.created_by, r.created_at, r.expires_at, r.revoked_at)
            for r in records
        )

    def revoke(self, jti: str, by: str, reply: Reply[None]) -> None:
        """Revoke any token by jti; a system token is also marked revoked in its table."""
        if not jti or len(jti) > 128:
            raise InvalidRequest("jti must be 1-128 characters")
        s = self._state.settings
        now = self._guard.clock()
        record = self._state.system_tokens.get(jti)
        tokens: tuple[SystemTokenRecord, ...] = ()
        if record is not None and record.revoked_at is None:
            tokens = (replace(record, revoked_at=now),)
            self._state.system_tokens[jti] = tokens[0]
        # Unknown jti: keep it as long as any token we issue could live.
        expires = record.expires_at if record else now + max(s.access_ttl, s.refresh_ttl, s.system_token_ttl)
        revocation = Revocation(jti, expires, now, "revoked by admin")
        self._state.revocations[jti] = revocation
        entry = self._entry("token_revoked", record.name if record else None, by, {"jti": jti})
        self._guard.commit(
            Change(revocations=(revocation,), system_tokens=tokens, audit=(entry,)), lambda: reply.send(None)
        )

    def _entry(self, event: str, subject: str | None, by: str, data: Mapping[str, object]) -> AuditEntry:
        return self._guard.entry(event, subject, None, {**data, "by": by}, publish=True)
