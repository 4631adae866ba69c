"""The runtime's exception tree.

``ActorError`` is the base of everything the runtime itself raises. Domain code raises subclasses of
``DomainError`` from a handler to answer an ask with an error; those are *not* crashes.
"""

from __future__ import annotations


class ActorError(Exception):
    """Base class of the errors the runtime raises."""


class ActorStopped(ActorError):
    """The actor is stopped (on purpose) and will not handle the message."""

    def __init__(self, actor: str) -> None:
        super().__init__(f"actor {actor!r} is stopped")
        self.actor = actor


class ActorCrashed(ActorError):
    """The actor crashed while it held the request; ``__cause__`` is the crash."""

    def __init__(self, actor: str, cause: BaseException | None = None) -> None:
        detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        super().__init__(f"actor {actor!r} crashed while handling the request{detail}")
        self.actor = actor
        self.__cause__ = cause


class MailboxFull(ActorError):
    """``tell_nowait`` found no room in the bounded mailbox."""

    def __init__(self, actor: str, capacity: int) -> None:
        super().__init__(f"mailbox of actor {actor!r} is full ({capacity} messages)")
        self.actor = actor
        self.capacity = capacity


class StartFailed(ActorError):
    """A child failed to start; names the child by its id. ``__cause__`` is the failure."""

    def __init__(self, child_id: str, cause: BaseException) -> None:
        super().__init__(f"child {child_id!r} failed to start: {type(cause).__name__}: {cause}")
        self.child_id = child_id
        self.__cause__ = cause


class Escalated(ActorError):
    """A supervisor exceeded its restart intensity, stopped its children and gave up."""

    def __init__(self, supervisor_id: str, child_id: str, cause: BaseException | None) -> None:
        super().__init__(
            f"supervisor {supervisor_id!r} gave up: restart intensity exceeded (last failure in {child_id!r})"
        )
        self.supervisor_id = supervisor_id
        self.child_id = child_id
        self.__cause__ = cause


class DomainError(Exception):
    """Base for errors a handler raises to answer its asker; the actor keeps running."""
