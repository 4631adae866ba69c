"""What the security actor accepts and answers: messages, results and errors.

The node (HTTP edge, CLI) and other actors import this module only. Every error is a `SecurityError`
carrying the HTTP status, a stable machine code, a human message safe to show, and extra headers
(`WWW-Authenticate`, `Retry-After`, `RateLimit`, ...), so the edge maps them without knowing the cases.
Secrets never appear in any error, result repr or event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import trio

from actors.security.audit import AuditRow, AuditVerification
from actors.security.ratelimit import RateDecision, RatePolicy
from actors.security.roles import AUTHORISATION_TABLE, Action, Role, is_allowed
from actors.security.settings import (
    JwtKey,
    LockoutPolicy,
    SecuritySettings,
    SettingsError,
    WebhookSettings,
    validate_settings,
)
from actors.security.webhooks import WebhookVerdict
from runtime import DomainError, Reply

__all__ = [
    "AUTHORISATION_TABLE",
    "Action",
    "AuditRow",
    "AuditVerification",
    "Authorize",
    "Busy",
    "ChangeRole",
    "Conflict",
    "CreateUser",
    "DisableUser",
    "Forbidden",
    "GetRateLimits",
    "InvalidRequest",
    "IssueSystemToken",
    "JwtKey",
    "ListAudit",
    "ListSystemTokens",
    "ListUsers",
    "LockedOut",
    "LockoutPolicy",
    "Login",
    "Logout",
    "NotFound",
    "Principal",
    "RateDecision",
    "RateLimited",
    "RatePolicy",
    "Receipt",
    "Refresh",
    "ResetPassword",
    "RevokeToken",
    "Role",
    "SecurityError",
    "SecurityMsg",
    "SecuritySettings",
    "SetRateLimits",
    "SettingsError",
    "SystemToken",
    "SystemTokenInfo",
    "Throttle",
    "TokenPair",
    "Unauthenticated",
    "UserInfo",
    "VerifyAudit",
    "VerifyWebhook",
    "WebhookSettings",
    "WebhookVerdict",
    "is_allowed",
    "validate_settings",
]

Headers = tuple[tuple[str, str], ...]


# ----------------------------------------------------------------------------------------------- errors
class SecurityError(DomainError):
    """Base of every refusal: HTTP `status`, stable `code`, safe `message`, extra response `headers`."""

    status = 400
    code = "security_error"

    def __init__(self, message: str, headers: Headers = ()) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class Unauthenticated(SecurityError):
    """No, bad, expired or revoked credentials (401)."""

    status = 401
    code = "unauthenticated"

    def __init__(self, message: str = "authentication required") -> None:
        super().__init__(message, (("WWW-Authenticate", 'Bearer error="invalid_token"'),))


class Forbidden(SecurityError):
    """Authenticated, but the role may not perform the action (403)."""

    status = 403
    code = "forbidden"


class RateLimited(SecurityError):
    """Over the rate limit of the route class (429); headers carry Retry-After and RateLimit fields."""

    status = 429
    code = "rate_limited"

    def __init__(self, decision: RateDecision) -> None:
        super().__init__("rate limit exceeded, retry later", tuple(decision.headers()))
        self.decision = decision


class LockedOut(SecurityError):
    """Too many failed logins: the account (423) or the client (429) must wait `retry_after` seconds."""

    code = "locked_out"

    def __init__(self, scope: str, retry_after: float) -> None:
        seconds = max(1, int(retry_after + 0.999))
        what = "account is temporarily locked" if scope == "account" else "too many failed logins from here"
        super().__init__(
            f"{what} after repeated failed logins; retry in {seconds} s", (("Retry-After", str(seconds)),)
        )
        self.status = 423 if scope == "account" else 429
        self.scope = scope
        self.retry_after = retry_after


class InvalidRequest(SecurityError):
    """The request is malformed or violates a policy (bad name, weak password) (422)."""

    status = 422
    code = "invalid_request"


class NotFound(SecurityError):
    """No such user or token (404)."""

    status = 404
    code = "not_found"


class Conflict(SecurityError):
    """The user already exists, or similar (409)."""

    status = 409
    code = "conflict"


class Busy(SecurityError):
    """Too many logins in flight; try again shortly (503)."""

    status = 503
    code = "busy"

    def __init__(self, message: str = "too many logins in progress") -> None:
        super().__init__(message, (("Retry-After", "1"),))


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as established by `Authorize`, plus the rate-limit numbers for response headers."""

    sub: str
    role: Role
    kind: Literal["user", "system"]
    jti: str
    expires_at: float
    rate: RateDecision


@dataclass(frozen=True, slots=True)
class TokenPair:
    """A login or refresh result. The tokens are secrets: never log this object."""

    access_token: str = field(repr=False)
    access_expires_at: float
    refresh_token: str = field(repr=False)
    refresh_expires_at: float
    role: Role
    token_type: str = "Bearer"


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user as shown to admins (no password hash)."""

    name: str
    role: Role
    disabled: bool
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class SystemToken:
    """A freshly issued long-lived token for a worker/integration; `token` is shown exactly once."""

    token: str = field(repr=False)
    jti: str
    name: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class SystemTokenInfo:
    """A system token as listed to admins (never the token itself)."""

    jti: str
    name: str
    created_by: str
    created_at: float
    expires_at: float
    revoked_at: float | None


# --------------------------------------------------------------------------------------------- messages
@dataclass(frozen=True, slots=True)
class Authorize:
    """The hot path: verify `token`, check `action` for its role, take a rate-limit unit of `route_class`.

    `client` is the client key (IP) used for auditing. Answers a `Principal`, or fails with
    Unauthenticated (401), Forbidden (403) or RateLimited (429).
    """

    token: str | None
    action: Action
    route_class: str
    client: str
    reply: Reply[Principal]


@dataclass(frozen=True, slots=True)
class Throttle:
    """Rate-limit an anonymous request (login page, health, webhooks) by client key; RateLimited if over."""

    route_class: str
    client: str
    reply: Reply[RateDecision]


@dataclass(frozen=True, slots=True)
class Login:
    """Password login. TokenPair, or Unauthenticated / LockedOut / RateLimited / Busy."""

    username: str
    password: str = field(repr=False)
    client: str
    reply: Reply[TokenPair]


@dataclass(frozen=True, slots=True)
class Refresh:
    """Rotate a refresh token. Reusing an already rotated one revokes its whole family."""

    refresh_token: str = field(repr=False)
    client: str
    reply: Reply[TokenPair]


@dataclass(frozen=True, slots=True)
class Logout:
    """Revoke the access token (by jti) and, if given, the refresh token's family."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    client: str
    reply: Reply[None]


@dataclass(frozen=True, slots=True)
class CreateUser:
    """Create a human user (admin, operator or viewer). `by` names who did it, for the audit trail."""

    name: str
    password: str = field(repr=False)
    role: Role
    by: str
    reply: Reply[UserInfo]


@dataclass(frozen=True, slots=True)
class ListUsers:
    """All users, sorted by name."""

    reply: Reply[tuple[UserInfo, ...]]


@dataclass(frozen=True, slots=True)
class DisableUser:
    """Disable (or with `disabled=False` re-enable) a user; disabling revokes all its tokens."""

    name: str
    by: str
    reply: Reply[UserInfo]
    disabled: bool = True


@dataclass(frozen=True, slots=True)
class ChangeRole:
    """Change a user's role; its existing tokens are revoked."""

    name: str
    role: Role
    by: str
    reply: Reply[UserInfo]


@dataclass(frozen=True, slots=True)
class ResetPassword:
    """Set a new password (admin reset or self-service after re-authentication); revokes all tokens."""

    name: str
    new_password: str = field(repr=False)
    by: str
    reply: Reply[UserInfo]


@dataclass(frozen=True, slots=True)
class IssueSystemToken:
    """Issue a long-lived token for a worker/integration named `name` (`ttl` seconds, default from config)."""

    name: str
    by: str
    reply: Reply[SystemToken]
    ttl: float | None = None


@dataclass(frozen=True, slots=True)
class ListSystemTokens:
    """All system tokens that have not expired, revoked ones included."""

    reply: Reply[tuple[SystemTokenInfo, ...]]


@dataclass(frozen=True, slots=True)
class RevokeToken:
    """Revoke a token by jti (system tokens, or any access token an admin knows the jti of)."""

    jti: str
    by: str
    reply: Reply[None]


class Receipt:
    """Settled once a change is durable (`wait` returns), or failed when it never will be (`wait` raises).

    Made by an asker and passed in a message (`VerifyWebhook.durable`) so the answer can come before the
    commit: the asker overlaps its own next step with it, and acknowledges only after `wait`.
    """

    __slots__ = ("_error", "_settled")

    def __init__(self) -> None:
        self._settled = trio.Event()
        self._error: BaseException | None = None

    @property
    def settled(self) -> bool:
        """True once durable or failed."""
        return self._settled.is_set()

    def done(self) -> None:
        """The change is durable."""
        self._settled.set()

    def fail(self, error: BaseException) -> None:
        """The change will never be durable; `wait` raises `error` (a no-op once settled)."""
        if not self._settled.is_set():
            self._error = error
            self._settled.set()

    async def wait(self) -> None:
        """Return once durable (at once, without a checkpoint, if it already is); raise if it failed."""
        if not self._settled.is_set():
            await self._settled.wait()
        if self._error is not None:
            raise self._error


@dataclass(frozen=True, slots=True)
class VerifyWebhook:
    """Check a webhook's signature over the raw body; the verdict's status is 200 or a 4xx.

    With `throttle` (a route class), first take one rate-limit unit of `client` under it, exactly as
    `Throttle` would (RateLimited if over): one round trip instead of two.

    An accepted delivery's replay keys are committed before it may be acknowledged. Without `durable`
    the verdict waits for that commit; with it, the verdict is answered at once and `durable` settles
    after the commit (fails, with ActorCrashed, if the actor dies first): the asker must `wait` for it
    before acknowledging. Memory refuses a replay meanwhile either way.
    """

    headers: Mapping[str, str]
    body: bytes = field(repr=False)
    client: str
    reply: Reply[WebhookVerdict]
    throttle: str | None = None
    durable: Receipt | None = None


@dataclass(frozen=True, slots=True)
class VerifyAudit:
    """Walk the whole audit chain and report whether it is intact."""

    reply: Reply[AuditVerification]


@dataclass(frozen=True, slots=True)
class ListAudit:
    """Audit rows with id > `after_id`, oldest first, at most `limit`."""

    reply: Reply[tuple[AuditRow, ...]]
    after_id: int = 0
    limit: int = 100
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class SetRateLimits:
    """Replace the rate-limit policies of the route classes named in `policies` at runtime (the others keep
    theirs; `replace_all` drops every class not named). A 'default' policy must remain. Answers the full
    set now in force; audited as `rate_limits_changed`. Existing per-key state carries over."""

    policies: Mapping[str, RatePolicy]
    by: str
    reply: Reply[Mapping[str, RatePolicy]]
    replace_all: bool = False


@dataclass(frozen=True, slots=True)
class GetRateLimits:
    """The rate-limit policies in force, by route class."""

    reply: Reply[Mapping[str, RatePolicy]]


SecurityMsg = (
    Authorize
    | Throttle
    | Login
    | Refresh
    | Logout
    | CreateUser
    | ListUsers
    | DisableUser
    | ChangeRole
    | ResetPassword
    | IssueSystemToken
    | ListSystemTokens
    | RevokeToken
    | VerifyWebhook
    | VerifyAudit
    | ListAudit
    | SetRateLimits
    | GetRateLimits
)
"""Everything the security actor accepts."""
