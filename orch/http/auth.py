"""Authentication, authorisation and rate limits for every route: ONE place, driven by `RouteSpec.auth`.

Before each request the matched route's spec says which security `Action` it needs (None = anonymous).
The bearer token, the action, a route class (read / write / worker / stream / webhook) and the client
address go to the security actor in one `Authorize` message (the hot path: verify, check the role against
THE table in `actors/security/roles.py`, take a rate-limit unit). Refusals escape as the actor's errors
and become 401 (`WWW-Authenticate: Bearer`), 403 or 429 (`Retry-After`, `RateLimit`, `RateLimit-Policy`)
through the error table; successes carry the `RateLimit` / `RateLimit-Policy` headers too.

Anonymous routes: /health, /openapi.json, /auth/login, /auth/refresh (rate-limited per client inside the
security actor), /auth/logout (it authenticates by the very token it revokes) and /webhook (authenticated
by its signature). `/metrics` needs `metrics.read` unless `security.metrics_anonymous` is set.
Websocket routes are checked by their handlers with `authorize` (the token may come in the first message).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, cast

from quart import current_app, g, request

from actors.security.messages import Action, Authorize, Principal, RateDecision, Throttle
from orch.http.edge import RATE_KEY, ROUTE_KEY, Scope, scope_header
from orch.http.problems import ServiceUnavailable, Unauthorized
from orch.http.routing import RouteSpec

if TYPE_CHECKING:
    from orch.http.app import OrchApp
    from orch.node import Node

__all__ = [
    "PRINCIPAL_KEY",
    "Guard",
    "authorize",
    "authorize_scope",
    "bearer_token",
    "client_address",
    "current_principal",
    "install_auth",
    "route_class",
    "route_guard",
    "scope_client",
    "throttle",
]

_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{1,8192}")
_SPECS_KEY = "orch.auth.specs"
PRINCIPAL_KEY = "orch.principal"  # scope key: the caller, when a raw route checked it before handing on


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None when absent; 401 when malformed."""
    if header is None or not header.strip():
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not _TOKEN.fullmatch(token):
        raise Unauthorized("The Authorization header must be 'Bearer <token>'.")
    return token


def route_class(spec: RouteSpec) -> str:
    """The rate-limit class of a route: worker, stream, webhook, read (GET) or write."""
    action = spec.auth or ""
    if action.startswith("worker."):
        return "worker"
    if action == Action.EVENT_STREAM or spec.websocket:
        return "stream"
    if action == Action.WEBHOOK_RECEIVE:
        return "webhook"
    return "read" if spec.method in ("GET", "HEAD") else "write"


def client_address() -> str:
    """The client key of the current request (its IP address; proxies are not trusted)."""
    return request.remote_addr or "unknown"


async def authorize(
    node: Node, action: Action, token: str | None, *, route_class: str, client: str
) -> Principal:
    """Who is calling and whether they may do `action`: a Principal, or 401 / 403 / 429 / 503 errors.

    The same check every HTTP route gets; websocket handlers call it themselves.
    """
    if not token:
        raise Unauthorized("This endpoint needs a bearer token (Authorization: Bearer <token>).")
    ref = node.security
    if ref is None:
        raise ServiceUnavailable("The security service is not running.")
    # Load shedding: a full mailbox answers 503 + Retry-After at once rather than queueing requests.
    return await ref.ask_nowait(lambda reply: Authorize(token, action, route_class, client, reply))


async def throttle(node: Node, route_class: str, client: str) -> RateDecision:
    """Take a rate-limit unit of an anonymous request by client address (429 when over)."""
    ref = node.security
    if ref is None:
        raise ServiceUnavailable("The security service is not running.")
    return await ref.ask_nowait(lambda reply: Throttle(route_class, client, reply))


def current_principal() -> Principal | None:
    """The caller of the current request, once `install_auth`'s check has run (None on anonymous routes)."""
    return cast(Principal | None, g.get("principal"))


Guard = tuple[Action, str]
"""What a route needs: its security action and its rate-limit class."""


def route_guard(spec: RouteSpec) -> Guard:
    """The guard of a route with `auth` (ValueError names an unknown action)."""
    return Action(spec.auth or ""), route_class(spec)


def scope_client(scope: Scope) -> str:
    """The client key of an ASGI request: its IP address, as Quart's `request.remote_addr` gives it."""
    client = scope.get("client")
    return str(client[0]) if client else "<local>"


async def authorize_scope(node: Node, guard: Guard, scope: Scope) -> Principal:
    """THE check of a guarded HTTP request (Quart routes and the Edge's raw routes alike): the bearer
    token of `scope`, the guard's action and rate class, the client address, one `Authorize` ask. The
    caller's RateLimit headers are left in the scope for the Edge (RATE_KEY)."""
    action, rate_class = guard
    token = bearer_token(scope_header(scope, b"authorization"))
    principal = await authorize(node, action, token, route_class=rate_class, client=scope_client(scope))
    # The Edge adds RateLimit / RateLimit-Policy to the answer (unless the route set them itself): raw
    # header pairs there, where werkzeug's Headers.setdefault costs a KeyError per absent name.
    scope[RATE_KEY] = principal.rate
    return principal


async def _enforce() -> None:
    # One hook for both jobs (and one lookup of the request proxy): name the route for the edge's
    # metrics and access log first, so refused requests are still counted under their route.
    req = request._get_current_object()  # type: ignore[attr-defined]
    rule = req.url_rule
    if rule is None or rule.endpoint is None:
        return
    scope = req.scope
    scope[ROUTE_KEY] = rule.rule
    checked = scope.get(PRINCIPAL_KEY)
    if checked is not None:  # a raw route checked the request already and handed it on
        g.principal = checked
        return
    app = cast("OrchApp", current_app)
    guards: dict[tuple[str, str], Guard] = app.extensions[_SPECS_KEY]
    guard = guards.get((rule.endpoint, "GET" if req.method == "HEAD" else req.method))
    if guard is None:
        return
    node = app.node
    if guard[0] is Action.METRICS_READ and node.config.security.metrics_anonymous:
        return
    g.principal = await authorize_scope(node, guard, scope)


def install_auth(app: OrchApp) -> None:
    """Name each request's route (for the edge) and enforce its `auth` (unknown actions fail at start-up)."""
    # Resolved once here rather than per request: ValueError names a bad action at start-up.
    app.extensions[_SPECS_KEY] = {
        (s.endpoint, s.method): route_guard(s) for s in app.routes if s.auth is not None and not s.websocket
    }
    for spec in app.routes:
        if spec.auth is not None:
            Action(spec.auth)  # websocket routes too
    app.before_request(_enforce)
