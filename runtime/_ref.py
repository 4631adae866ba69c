"""Typed actor addresses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from ._mailbox import Mailbox, MailboxStats
from ._reply import Reply, new_reply

M = TypeVar("M")
R = TypeVar("R")

_TOKEN = object()


class ActorRef(Generic[M]):
    """The address of an actor that accepts messages of type ``M``.

    A ref stays valid across restarts of its actor: it names the mailbox, which the runtime keeps. Refs
    come only from the runtime (``worker(...).ref``, ``Actor.ref``, ``open_actor``).
    """

    __slots__ = ("_mailbox",)

    def __init__(self, mailbox: Mailbox[M], token: object) -> None:
        if token is not _TOKEN:
            raise TypeError("ActorRef objects are created by the runtime")
        self._mailbox = mailbox

    @property
    def name(self) -> str:
        """The actor's id."""
        return self._mailbox.name

    async def tell(self, message: M) -> None:
        """Send ``message``, waiting for room in the mailbox (backpressure)."""
        await self._mailbox.put((message, None))

    def tell_nowait(self, message: M) -> None:
        """Send ``message`` now, or raise ``MailboxFull``."""
        self._mailbox.put_nowait((message, None))

    async def ask(self, make: Callable[[Reply[R]], M]) -> R:
        """Send ``make(reply)`` and wait for the answer under the caller's cancel scope.

        Returns the value the handler sent; raises the error it failed with (a ``DomainError``),
        ``ActorCrashed`` if the actor died holding the request, or ``ActorStopped`` if it is or becomes
        stopped first. If the caller is cancelled, the request is abandoned: if the actor has not taken it
        yet it skips it, and a late answer is dropped.
        """
        reply: Reply[R] = new_reply()
        await self._mailbox.put((make(reply), reply))  # type: ignore[arg-type]  # Reply is invariant
        return await reply._wait()

    async def ask_nowait(self, make: Callable[[Reply[R]], M]) -> R:
        """Like ``ask``, but raise ``MailboxFull`` at once instead of waiting for room (for load shedding)."""
        reply: Reply[R] = new_reply()
        self._mailbox.put_nowait((make(reply), reply))  # type: ignore[arg-type]  # Reply is invariant
        return await reply._wait()

    def statistics(self) -> MailboxStats:
        """An immutable snapshot of the mailbox."""
        return self._mailbox.statistics()

    def __repr__(self) -> str:
        return f"<ActorRef {self.name!r}>"


def new_ref(mailbox: Mailbox[M]) -> ActorRef[M]:
    """Create the ref for ``mailbox`` (runtime-internal)."""
    return ActorRef(mailbox, _TOKEN)
