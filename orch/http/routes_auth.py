"""Sessions, users, system tokens and the audit trail over HTTP (the security actor does the work).

- `POST /auth/login`, `/auth/refresh`, `/auth/logout`: password login -> access + refresh token; refresh
  rotates (reusing an old refresh token revokes the whole session); logout revokes.
- `/users...` (admin): create, list, get, disable/enable, reset password, change role.
- `/tokens...` (admin): long-lived tokens for workers and integrations: issue (shown once), list, revoke.
- `/audit`, `/audit/verify` (admin): the hash-chained security event trail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from quart import Response, request

from actors.security.messages import (
    AuditRow,
    AuditVerification,
    ChangeRole,
    CreateUser,
    DisableUser,
    IssueSystemToken,
    ListAudit,
    ListSystemTokens,
    ListUsers,
    Login,
    Logout,
    NotFound,
    Refresh,
    ResetPassword,
    RevokeToken,
    Role,
    SecurityMsg,
    SystemToken,
    SystemTokenInfo,
    TokenPair,
    UserInfo,
    VerifyAudit,
)
from orch.http.app import current_node, json_response
from orch.http.auth import bearer_token, client_address, current_principal
from orch.http.body import read_json_object
from orch.http.problems import ServiceUnavailable, Unauthorized, ValidationFailed
from orch.http.routing import QueryParam, Router
from orch.http.security_views import (
    ROLES,
    TOKEN_INFO_SCHEMA,
    TOKEN_PAIR_SCHEMA,
    USER_SCHEMA,
    array_of,
    audit_json,
    pair_json,
    token_info_json,
    user_json,
)
from runtime import ActorRef, Reply

__all__ = ["audit_routes", "auth_routes", "token_routes", "user_routes"]

T = TypeVar("T")

auth_routes = Router("auth")
user_routes = Router("users")
token_routes = Router("tokens")
audit_routes = Router("audit")

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_STR: dict[str, Any] = {"type": "string"}
_NUM: dict[str, Any] = {"type": "number"}
_NAME = r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}"
_LONG = 4096  # login passwords: longer than bcrypt's 72 bytes still fails as a clean 401, not a 422


# ---------------------------------------------------------------------------------------------- helpers
def _security() -> ActorRef[SecurityMsg]:
    ref = current_node().security
    if ref is None:
        raise ServiceUnavailable("The security service is not running.")
    return ref


async def _ask(make: Callable[[Reply[T]], SecurityMsg]) -> T:
    return await _security().ask(make)


def _by() -> str:
    principal = current_principal()
    return principal.sub if principal is not None else "anonymous"


def _pair_response(pair: TokenPair) -> Response:
    return json_response(pair_json(pair), headers=_NO_STORE)


def _query_int(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ValidationFailed(name, f"must be an integer within {lo}..{hi}")
    return int(raw)


def _role(value: str) -> Role:
    return Role(value)


# ------------------------------------------------------------------------------------------------ auth
@auth_routes.post(
    "/auth/login",
    summary="Log in with a user name and password",
    description="Answers an access token (short-lived) and a refresh token (rotates on use). Repeated "
    "failures lock the account (423) or the client (429), each with Retry-After.",
    request_schema={
        "type": "object",
        "properties": {"username": _STR, "password": _STR},
        "required": ["username", "password"],
    },
    response_schema=TOKEN_PAIR_SCHEMA,
    responses={
        200: "Logged in",
        401: "Invalid user name or password",
        422: "Missing field",
        423: "Account locked",
        429: "Too many attempts",
    },
)
async def login() -> Response:
    """Password login."""
    body = await read_json_object()
    username = body.req_str("username", aliases=("user", "name"), max_len=256)
    password = body.req_str("password", min_len=0, max_len=_LONG)
    body.reject_unknown()
    client = client_address()
    pair: TokenPair = await _ask(lambda r: Login(username, password, client, r))
    return _pair_response(pair)


@auth_routes.post(
    "/auth/refresh",
    summary="Exchange a refresh token for a new token pair",
    description="The refresh token rotates: the old one stops working. Presenting an already used refresh "
    "token revokes the whole session (every token of that login).",
    request_schema={"type": "object", "properties": {"refresh_token": _STR}, "required": ["refresh_token"]},
    response_schema=TOKEN_PAIR_SCHEMA,
    responses={200: "New token pair", 401: "Invalid, expired, revoked or reused refresh token"},
)
async def refresh() -> Response:
    """Rotate a refresh token."""
    body = await read_json_object()
    token = body.req_str("refresh_token", max_len=8192)
    body.reject_unknown()
    client = client_address()
    pair: TokenPair = await _ask(lambda r: Refresh(token, client, r))
    return _pair_response(pair)


@auth_routes.post(
    "/auth/logout",
    summary="Revoke the presented access token (and the session of a given refresh token)",
    description="Authenticates by the bearer token it revokes. With `refresh_token` in the body the whole "
    "session (refresh-token family) is revoked too.",
    request_schema={"type": "object", "properties": {"refresh_token": _STR}},
    responses={204: "Logged out", 401: "Missing or invalid bearer token"},
)
async def logout() -> Response:
    """Logout."""
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        raise Unauthorized("Logout needs the bearer token to revoke.")
    body = await read_json_object(allow_empty=True)
    refresh_token = body.opt_str("refresh_token", max_len=8192)
    body.reject_unknown()
    client = client_address()
    await _ask(lambda r: Logout(token, refresh_token, client, r))
    return Response("", status=204, headers=_NO_STORE)


# ----------------------------------------------------------------------------------------------- users
@user_routes.get(
    "/users",
    summary="List users",
    auth="user.read",
    response_schema=array_of(USER_SCHEMA, "users"),
)
async def list_users() -> Response:
    """All users, sorted by name."""
    users: tuple[UserInfo, ...] = await _ask(ListUsers)
    return json_response({"users": [user_json(u) for u in users]})


@user_routes.post(
    "/users",
    summary="Create a user",
    description="Roles: admin, operator, viewer (workers get system tokens). Passwords: 8..72 bytes, "
    "not a common one.",
    auth="user.manage",
    request_schema={
        "type": "object",
        "properties": {"name": _STR, "password": _STR, "role": {"enum": ROLES}},
        "required": ["name", "password", "role"],
    },
    response_schema=USER_SCHEMA,
    responses={201: "Created", 409: "The user exists", 422: "Bad name, weak password or unknown role"},
)
async def create_user() -> Response:
    """Create a user."""
    body = await read_json_object()
    name = body.req_str("name", aliases=("username",), max_len=64, pattern=_NAME)
    password = body.req_str("password", min_len=0, max_len=_LONG)
    role = _role(body.req_str("role", choices=ROLES))
    body.reject_unknown()
    by = _by()
    user: UserInfo = await _ask(lambda r: CreateUser(name, password, role, by, r))
    return json_response(user_json(user), 201, {"Location": f"/users/{user.name}"})


async def _find_user(name: str) -> UserInfo:
    users: tuple[UserInfo, ...] = await _ask(ListUsers)
    wanted = name.strip().lower()
    for user in users:
        if user.name == wanted:
            return user
    raise NotFound(f"no user {wanted!r}")


@user_routes.get("/users/<name>", summary="Get a user", auth="user.read", response_schema=USER_SCHEMA)
async def get_user(name: str) -> Response:
    """One user."""
    return json_response(user_json(await _find_user(name)))


@user_routes.post(
    "/users/<name>/disable",
    summary="Disable a user (revokes all its tokens)",
    auth="user.manage",
    response_schema=USER_SCHEMA,
)
async def disable_user(name: str) -> Response:
    """Disable a user; every token it holds stops working at once."""
    by = _by()
    user: UserInfo = await _ask(lambda r: DisableUser(name, by, r, True))
    return json_response(user_json(user))


@user_routes.post(
    "/users/<name>/enable", summary="Re-enable a user", auth="user.manage", response_schema=USER_SCHEMA
)
async def enable_user(name: str) -> Response:
    """Re-enable a disabled user (it must log in again)."""
    by = _by()
    user: UserInfo = await _ask(lambda r: DisableUser(name, by, r, False))
    return json_response(user_json(user))


@user_routes.put(
    "/users/<name>/password",
    summary="Reset a user's password (revokes all its tokens)",
    auth="user.manage",
    request_schema={"type": "object", "properties": {"password": _STR}, "required": ["password"]},
    response_schema=USER_SCHEMA,
    responses={200: "Password changed", 404: "No such user", 422: "Weak password"},
)
async def reset_password(name: str) -> Response:
    """Set a new password."""
    body = await read_json_object()
    password = body.req_str("password", min_len=0, max_len=_LONG)
    body.reject_unknown()
    by = _by()
    user: UserInfo = await _ask(lambda r: ResetPassword(name, password, by, r))
    return json_response(user_json(user))


@user_routes.put(
    "/users/<name>/role",
    summary="Change a user's role (revokes all its tokens)",
    auth="user.manage",
    request_schema={"type": "object", "properties": {"role": {"enum": ROLES}}, "required": ["role"]},
    response_schema=USER_SCHEMA,
)
async def set_role(name: str) -> Response:
    """Give a user another role."""
    body = await read_json_object()
    role = _role(body.req_str("role", choices=ROLES))
    body.reject_unknown()
    by = _by()
    user: UserInfo = await _ask(lambda r: ChangeRole(name, role, by, r))
    return json_response(user_json(user))


# ---------------------------------------------------------------------------------------------- tokens
@token_routes.post(
    "/tokens",
    summary="Issue a long-lived token for a worker or integration",
    description="The token has role `system` (claim, heartbeat, report, webhooks, dispatch) and is shown "
    "in this response only. `ttl` in seconds (default and maximum: security.system_token_ttl).",
    auth="token.issue_system",
    request_schema={
        "type": "object",
        "properties": {"name": _STR, "ttl": {"type": "number", "exclusiveMinimum": 0}},
        "required": ["name"],
    },
    response_schema={
        "type": "object",
        "properties": {"token": _STR, "jti": _STR, "name": _STR, "expires_at": _NUM},
        "required": ["token", "jti", "name", "expires_at"],
    },
    responses={201: "Issued", 422: "Bad name or ttl"},
)
async def issue_token() -> Response:
    """Issue a system token."""
    body = await read_json_object()
    name = body.req_str("name", max_len=64, pattern=_NAME)
    ttl = body.opt_number("ttl", min=1.0)
    body.reject_unknown()
    by = _by()
    issued: SystemToken = await _ask(lambda r: IssueSystemToken(name, by, r, ttl))
    data = {"token": issued.token, "jti": issued.jti, "name": issued.name, "expires_at": issued.expires_at}
    return json_response(data, 201, _NO_STORE)


@token_routes.get(
    "/tokens",
    summary="List system tokens (never the tokens themselves)",
    auth="token.issue_system",
    response_schema=array_of(TOKEN_INFO_SCHEMA, "tokens"),
)
async def list_tokens() -> Response:
    """Unexpired system tokens, revoked ones included."""
    tokens: tuple[SystemTokenInfo, ...] = await _ask(ListSystemTokens)
    return json_response({"tokens": [token_info_json(t) for t in tokens]})


@token_routes.delete(
    "/tokens/<jti>",
    summary="Revoke a token by its id (jti)",
    auth="token.revoke",
    responses={204: "Revoked (also for an unknown jti: it can never be used)", 422: "Bad jti"},
)
async def revoke_token(jti: str) -> Response:
    """Revoke a system token (or any token whose jti is known)."""
    by = _by()
    await _ask(lambda r: RevokeToken(jti, by, r))
    return Response("", status=204)


# ----------------------------------------------------------------------------------------------- audit
@audit_routes.get(
    "/audit",
    summary="Security events, oldest first",
    auth="audit.read",
    query=(
        QueryParam("after", "Only events with id > after", {"type": "integer", "minimum": 0}),
        QueryParam("limit", "At most this many (1..1000, default 100)", {"type": "integer"}),
        QueryParam("subject", "Only events about this user or principal"),
    ),
    response_schema={
        "type": "object",
        "properties": {
            "events": {"type": "array", "items": {"type": "object"}},
            "next_after": {"type": ["integer", "null"]},
        },
    },
)
async def list_audit() -> Response:
    """A page of the audit trail; pass `next_after` as `after` for the next page."""
    after = _query_int("after", 0, 0, 2**62)
    limit = _query_int("limit", 100, 1, 1000)
    subject = request.args.get("subject") or None
    rows: tuple[AuditRow, ...] = await _ask(lambda r: ListAudit(r, after, limit, subject))
    next_after = rows[-1].id if len(rows) == limit else None
    return json_response({"events": [audit_json(row) for row in rows], "next_after": next_after})


@audit_routes.get(
    "/audit/verify",
    summary="Verify the audit trail's hash chain",
    auth="audit.read",
    response_schema={
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "checked": {"type": "integer"},
            "head": _STR,
            "first_bad_id": {"type": ["integer", "null"]},
            "reason": _STR,
        },
    },
)
async def verify_audit() -> Response:
    """Walk the whole chain; `ok` false names the first broken row."""
    result: AuditVerification = await _ask(VerifyAudit)
    return json_response(
        {
            "ok": result.ok,
            "checked": result.checked,
            "head": result.head,
            "first_bad_id": result.first_bad_id,
            "reason": result.reason,
        }
    )
