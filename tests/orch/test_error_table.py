"""The one exception -> HTTP table: every mapped error gets its status (and Retry-After where due)."""

from __future__ import annotations

import pytest

from actors.dispatcher.messages import IllegalTransition, InvalidTask, StaleLease, TaskNotFound, TaskStatus
from actors.security.messages import Busy, Forbidden, LockedOut, Unauthenticated
from orch.http.errors import install_error_mappings
from orch.http.problems import ApiError, ValidationFailed, to_api_error
from runtime import ActorCrashed, ActorStopped, DomainError, MailboxFull

install_error_mappings()


class Unlisted(DomainError):
    pass


def mapped(exc: BaseException) -> ApiError:
    error = to_api_error(exc)
    assert error is not None
    return error


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (TaskNotFound("t1"), 404),
        (IllegalTransition("t1", TaskStatus.SUCCEEDED, TaskStatus.RUNNING), 409),
        (StaleLease("t1"), 409),
        (InvalidTask("priority must be within [-100, 100]"), 422),
        (Unauthenticated(), 401),
        (Forbidden("viewer may not dispatch"), 403),
        (LockedOut("account", 30.0), 423),
        (LockedOut("client", 30.0), 429),
        (Busy("too many logins in flight"), 503),
        (MailboxFull("dispatcher", 10), 503),
        (ActorStopped("dispatcher"), 503),
        (ActorCrashed("dispatcher", RuntimeError("x")), 503),
        (Unlisted("widget is busy"), 409),
    ],
)
def test_each_error_maps_to_its_status(exc: BaseException, status: int) -> None:
    error = mapped(exc)
    assert error.status == status
    if status in (429, 503):
        assert int(error.headers["Retry-After"]) >= 1


def test_unauthenticated_carries_www_authenticate() -> None:
    assert "WWW-Authenticate" in mapped(Unauthenticated()).headers


def test_invalid_task_names_the_field_when_it_can() -> None:
    named = mapped(InvalidTask("priority must be within [-100, 100]"))
    assert isinstance(named, ValidationFailed)
    assert (named.field, named.problem) == ("priority", "must be within [-100, 100]")
    unnamed = mapped(InvalidTask("at most 1000 tasks per batch"))
    assert isinstance(unnamed, ValidationFailed)
    assert unnamed.field == ""


def test_unknown_exceptions_are_not_mapped() -> None:
    assert to_api_error(RuntimeError("bug")) is None
