"""The error table: which exception from below the edge becomes which HTTP answer. One place, one table.

Runtime errors are mapped here; each actor's `DomainError`s get their line when the actor is wired in.
A DomainError with no entry of its own answers 409 with its own message (domain messages are written for
the asker) and is logged, so the missing entry gets noticed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from actors.dispatcher.messages import IllegalTransition, InvalidTask, StaleLease, TaskNotFound
from actors.locks.messages import (
    InvalidLockRequest,
    LockExpired,
    LockNotHeld,
    LockUnavailable,
    NotOwner,
)
from actors.monitor.messages import InvalidQuery
from actors.security.messages import SecurityError
from orch.http.problems import (
    ApiError,
    Conflict,
    NotFound,
    ServiceUnavailable,
    ShuttingDown,
    ValidationFailed,
    problem,
    register_error,
)
from runtime import ActorCrashed, ActorStopped, DomainError, MailboxFull

__all__ = ["install_error_mappings"]

_log = logging.getLogger("orch.http")


def _mailbox_full(exc: BaseException) -> ServiceUnavailable:
    assert isinstance(exc, MailboxFull)
    return ServiceUnavailable(f"The {exc.actor} is overloaded; retry shortly.", retry_after=1.0)


def _actor_stopped(exc: BaseException) -> ShuttingDown:
    assert isinstance(exc, ActorStopped)
    return ShuttingDown(f"The {exc.actor} is stopped (the node is shutting down).")


def _actor_crashed(exc: BaseException) -> ServiceUnavailable:
    assert isinstance(exc, ActorCrashed)
    return ServiceUnavailable(
        f"The {exc.actor} failed while handling this request and is restarting; the request may or may not "
        "have taken effect. Retry (with an idempotency key where the endpoint takes one).",
        retry_after=1.0,
    )


def _unmapped_domain_error(exc: BaseException) -> Conflict:
    _log.warning("no HTTP mapping for %s; answering 409", type(exc).__name__)
    return Conflict(str(exc))


def _security(exc: BaseException) -> ApiError:
    # The security actor decides status, code and safe message itself (401/403/404/409/422/423/429/503).
    assert isinstance(exc, SecurityError)
    headers = dict(exc.headers)
    if exc.status in (429, 503) and "Retry-After" not in headers:
        headers["Retry-After"] = "1"
    return problem(exc.status, exc.code.replace("_", "-"), exc.message, headers=headers)


def _illegal_transition(exc: BaseException) -> ApiError:
    # Distinct from a stale lease: the task exists and is yours to change, but not into that status now.
    assert isinstance(exc, IllegalTransition)
    error = problem(409, "illegal-transition", str(exc))
    error.extensions.update(current=exc.current.value, target=exc.target.value)
    return error


def _stale_lease(exc: BaseException) -> ApiError:
    # The caller lost the task (lease lapsed, timed out, taken back): stop working on it, do not retry.
    return problem(409, "stale-lease", str(exc))


def _invalid_task(exc: BaseException) -> ValidationFailed:
    # InvalidTask messages read "<field> must ..." when one field is at fault: name it.
    message = str(exc)
    field, _, rest = message.partition(" ")
    if field.isidentifier() and rest.startswith("must "):
        return ValidationFailed(field, rest)
    return ValidationFailed("", message)


def _invalid_lock(exc: BaseException) -> ValidationFailed:
    # InvalidLockRequest reads "'<resource>': <field> must ...": name the field.
    _, _, message = str(exc).partition(": ")
    field, _, rest = message.partition(" ")
    if field.isidentifier() and rest.startswith("must "):
        return ValidationFailed(field, rest)
    return ValidationFailed("", message or str(exc))


def _lock_conflict(slug: str) -> Callable[[BaseException], ApiError]:
    # Every lock refusal is a 409; the slug tells them apart (held, not the holder, expired, unknown token).
    return lambda exc: problem(409, slug, str(exc))


def install_error_mappings() -> None:
    """Register every mapping (idempotent)."""
    register_error(MailboxFull, _mailbox_full)
    register_error(ActorStopped, _actor_stopped)
    register_error(ActorCrashed, _actor_crashed)
    register_error(DomainError, _unmapped_domain_error)
    register_error(TaskNotFound, lambda exc: NotFound(str(exc)))
    register_error(IllegalTransition, _illegal_transition)
    register_error(StaleLease, _stale_lease)
    register_error(InvalidTask, _invalid_task)
    register_error(SecurityError, _security)
    register_error(InvalidLockRequest, _invalid_lock)
    register_error(LockUnavailable, _lock_conflict("lock-unavailable"))
    register_error(NotOwner, _lock_conflict("lock-not-owner"))
    register_error(LockNotHeld, _lock_conflict("lock-not-held"))
    register_error(LockExpired, _lock_conflict("lock-expired"))
    register_error(InvalidQuery, lambda exc: ValidationFailed("", str(exc)))  # monitor queries
