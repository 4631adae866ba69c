"""The security actor: one address for authentication, authorisation, rate limits, webhooks and audit.

`handle` never waits on I/O: the hot path (`Authorize`, `Throttle`, `VerifyWebhook`) is answered
synchronously from memory; bcrypt runs in spawned tasks behind a CapacityLimiter; state changes are
applied in memory first and answered once the ordered, batched `Committer` made them durable.
A background task reloads the stored state periodically so changes made by the CLI (another process on the
same database) take effect here within `reload_interval` seconds.
Webhook replay keys are checked in memory; an accepted delivery's keys are committed (group commit) before
its verdict is sent (or, when the asker passed a `Receipt`, before that receipt settles), loaded again at
start-up, and pruned from the database every `replay_prune_interval`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal, TypeVar, assert_never

import trio

from actors.security.admin import Admin
from actors.security.committer import Committer
from actors.security.guard import Guard
from actors.security.lockout import LockoutTracker
from actors.security.messages import (
    Action,
    Authorize,
    ChangeRole,
    CreateUser,
    DisableUser,
    Forbidden,
    GetRateLimits,
    IssueSystemToken,
    ListAudit,
    ListSystemTokens,
    ListUsers,
    Login,
    Logout,
    Principal,
    Receipt,
    Refresh,
    ResetPassword,
    RevokeToken,
    SecurityError,
    SecurityMsg,
    SetRateLimits,
    Throttle,
    Unauthenticated,
    VerifyAudit,
    VerifyWebhook,
)
from actors.security.passwords import PasswordHasher
from actors.security.ratelimit import RatePolicy
from actors.security.roles import is_allowed
from actors.security.sessions import Sessions
from actors.security.settings import SecuritySettings, with_dev_defaults
from actors.security.state import SecurityState
from actors.security.store import Change, SecurityStore
from actors.security.webhooks import WebhookVerdict, WebhookVerifier
from actors.storage import Database
from runtime import Actor, Reply

T = TypeVar("T")
PRUNE_EVERY = 3600.0


class SecurityActor(Actor[SecurityMsg]):
    """See the module docstring. `clock` is wall-clock unix seconds (tokens, audit, webhooks)."""

    def __init__(
        self,
        db: Database,
        settings: SecuritySettings,
        *,
        clock: Callable[[], float] = time.time,
        reload_interval: float = 5.0,
        replay_prune_interval: float = 60.0,
    ) -> None:
        settings = with_dev_defaults(settings)
        self._settings = settings
        self._clock = clock
        self._reload_interval = reload_interval
        self._replay_prune_interval = replay_prune_interval
        self._store = SecurityStore(db, audit_key=settings.audit_key)
        self._state = SecurityState(settings)
        self._committer = Committer(self._store, clock)
        self._guard = Guard(settings, self._committer, clock)
        self._hasher = PasswordHasher(settings.bcrypt_cost, settings.bcrypt_threads)
        lockout = LockoutTracker(settings.lockout)
        self._sessions = Sessions(self._state, self._guard, self._hasher, lockout)
        self._admin = Admin(self._state, self._guard, self._hasher, lockout)
        self._webhooks = WebhookVerifier(settings.webhooks)

    async def on_start(self) -> None:
        """Migrate, load the stored state and replay keys, warm bcrypt, start the committer and reloader."""
        await self._store.migrate()
        now = self._clock()
        self._state.merge(await self._store.load(now))
        limit = self._settings.webhooks.replay_cache_size
        self._webhooks.restore(await self._store.load_replays(now, limit), now)
        await self._hasher.warm()
        self.spawn(self._committer.run)
        self.spawn(self._reload_forever)
        self.spawn(self._prune_replays_forever)

    async def on_stop(self) -> None:
        """Commit whatever is still queued."""
        await self._committer.drain()

    async def handle(self, msg: SecurityMsg) -> None:
        """Dispatch one message (see messages.py for each one's contract)."""
        match msg:
            case Authorize(token=token, action=action, route_class=route_class, client=client, reply=reply):
                reply.send(self._authorize(token, action, route_class, client))
            case Throttle(route_class=route_class, client=client, reply=reply):
                reply.send(self._guard.take(route_class, ("ip", client), client))
            case VerifyWebhook(
                headers=headers, body=body, client=client, reply=reply, throttle=throttle, durable=durable
            ):
                if throttle is not None:
                    self._guard.take(throttle, ("ip", client), client)
                self._verify_webhook(headers, body, client, reply, durable)
            case Login(username=username, password=password, client=client, reply=reply):
                name = self._sessions.begin_login(username, client)
                self.spawn(self._sessions.finish_login, name, password, client, reply)
            case Refresh(refresh_token=token, client=client, reply=reply):
                self._sessions.refresh(token, client, reply)
            case Logout(access_token=access, refresh_token=refresh, client=client, reply=reply):
                self._sessions.logout(access, refresh, client, reply)
            case _:
                self._handle_admin(msg)

    def _handle_admin(self, msg: SecurityMsg) -> None:
        match msg:
            case CreateUser(name=name, password=password, role=role, by=by, reply=reply):
                name = self._admin.begin_create(name, password, role)
                self.spawn(self._admin.finish_create, name, password, role, by, reply)
            case ListUsers(reply=reply):
                reply.send(self._admin.list_users())
            case DisableUser(name=name, by=by, disabled=disabled, reply=reply):
                self._admin.set_disabled(name, disabled, by, reply)
            case ChangeRole(name=name, role=role, by=by, reply=reply):
                self._admin.change_role(name, role, by, reply)
            case ResetPassword(name=name, new_password=password, by=by, reply=reply):
                name = self._admin.begin_reset(name, password)
                self.spawn(self._admin.finish_reset, name, password, by, reply)
            case IssueSystemToken(name=name, by=by, ttl=ttl, reply=reply):
                self._admin.issue_system_token(name, by, ttl, reply)
            case ListSystemTokens(reply=reply):
                reply.send(self._admin.list_system_tokens())
            case RevokeToken(jti=jti, by=by, reply=reply):
                self._admin.revoke(jti, by, reply)
            case VerifyAudit(reply=reply):
                self.spawn(self._read_after_commit, reply, self._store.verify_audit)
            case ListAudit(after_id=after_id, limit=limit, subject=subject, reply=reply):
                work = lambda: self._store.audit_rows(after_id, min(limit, 1000), subject)  # noqa: E731
                self.spawn(self._read_after_commit, reply, work)
            case SetRateLimits(policies=policies, by=by, reply=reply, replace_all=replace_all):
                self._guard.set_policies(policies, replace_all=replace_all)
                data = {name: _policy_text(p) for name, p in sorted(self._guard.policies.items())}
                self._guard.audit("rate_limits_changed", by, None, data)
                reply.send(self._guard.policies)
            case GetRateLimits(reply=reply):
                reply.send(self._guard.policies)
            case Authorize() | Throttle() | VerifyWebhook() | Login() | Refresh() | Logout():
                raise AssertionError("handled in handle()")
            case _:
                assert_never(msg)

    # ------------------------------------------------------------------------------------------ hot path
    def _authorize(self, token: str | None, action: Action, route_class: str, client: str) -> Principal:
        now = self._clock()
        if token and not self._state.is_cached(token):
            # A flood of forged tokens must not buy ~100 us of verification each from one client.
            self._guard.check_bad_tokens(client)
        try:
            caller = self._state.caller(token, now)
        except Unauthenticated as exc:
            self._guard.count_bad_token(client)
            self._guard.sampled("token_rejected", None, client, {"reason": exc.message}, sample_key=client)
            raise
        sub = caller.claims.sub
        if not is_allowed(caller.role, action):
            data = {"action": action.value, "role": caller.role.value}
            self._guard.sampled("permission_denied", sub, client, data, sample_key=(sub, action))
            raise Forbidden(f"role {caller.role.value} may not {action.value}")
        decision = self._guard.take(route_class, (caller.kind, sub), client)
        kind: Literal["user", "system"] = "system" if caller.kind == "system" else "user"
        return Principal(sub, caller.role, kind, caller.claims.jti, caller.claims.exp, decision)

    def _verify_webhook(
        self,
        headers: Mapping[str, str],
        body: bytes,
        client: str,
        reply: Reply[WebhookVerdict],
        durable: Receipt | None,
    ) -> None:
        verdict, fresh = self._webhooks.check(headers, body, self._clock())
        if not verdict.ok:
            data = {"scheme": verdict.scheme, "status": verdict.status, "reason": verdict.reason}
            self._guard.sampled("webhook_rejected", verdict.delivery_id, client, data, sample_key=client)
        # Durable acknowledgement: a replay after a crash must still be refused, so the delivery is not
        # acknowledged before its keys' commit (memory already refuses the replay meanwhile): the verdict
        # waits for it, or the asker's receipt does (see VerifyWebhook).
        if not fresh:
            if durable is not None:
                durable.done()
            reply.send(verdict)
        elif durable is None:
            self._guard.commit(Change(replays=fresh), lambda: reply.send(verdict))
        else:
            self._guard.commit(Change(replays=fresh), durable.done, abort=durable.fail)
            reply.send(verdict)

    async def _read_after_commit(self, reply: Reply[T], read: Callable[[], Awaitable[T]]) -> None:
        # Audit queries see every event recorded before them: wait for the queued commits first.
        await self._committer.drain()
        try:
            value = await read()
        except SecurityError as exc:
            reply.fail(exc)
            return
        reply.send(value)

    async def _reload_forever(self) -> None:
        last_prune = trio.current_time()
        while True:
            await trio.sleep(self._reload_interval)
            now = self._clock()
            self._state.merge(await self._store.load(now))
            self._state.forget_expired(now)
            if trio.current_time() - last_prune >= PRUNE_EVERY:
                last_prune = trio.current_time()
                await self._store.prune(now)

    async def _prune_replays_forever(self) -> None:
        while True:
            await trio.sleep(self._replay_prune_interval)
            await self._store.prune_replays(self._clock())


def _policy_text(policy: RatePolicy) -> str:
    burst = "" if policy.burst is None else f"/{policy.burst}"
    return f"{policy.limit}/{policy.window:g}{burst}"
