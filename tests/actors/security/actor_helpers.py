"""Shared by the security actor tests: the ref type, fixture signatures, and an authorise shortcut."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from actors.security.messages import Action, Authorize, Principal, SecurityMsg, TokenPair, UserInfo
from runtime import ActorRef

Ref = ActorRef[SecurityMsg]
CreateUserFn = Callable[..., Awaitable[UserInfo]]
LoginFn = Callable[..., Awaitable[TokenPair]]


async def authorize(
    ref: Ref, token: str | None, action: Action = Action.TASK_READ, route: str = "read"
) -> Principal:
    """Ask the actor to authorise `action` for `token`, as a request from 10.0.0.1 would."""
    return await ref.ask(lambda r: Authorize(token, action, route, "10.0.0.1", r))
