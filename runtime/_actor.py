"""The actor base class and the loop that runs one incarnation of an actor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import trio

from ._errors import DomainError
from ._mailbox import Mailbox
from ._ref import ActorRef

M = TypeVar("M")


class Actor(Generic[M]):
    """Base class for actors: subclass it and implement ``handle``.

    One incarnation handles one message at a time. ``on_start`` runs before the actor counts as started
    (a supervisor starts the next child only after it); ``on_stop`` runs on a graceful stop. Background
    tasks started with ``spawn`` live and die with the incarnation. An exception escaping ``handle``,
    ``on_start`` or a background task is a crash; a ``DomainError`` raised by ``handle`` answers the asker
    and is not.
    """

    _ref: ActorRef[M] | None = None
    _mailbox: Mailbox[M] | None = None
    _nursery: trio.Nursery | None = None

    async def on_start(self) -> None:
        """Prepare the actor; the supervisor waits for this before starting the next child."""

    async def handle(self, message: M) -> None:
        """Handle one message. Answer requests through their ``reply`` slot."""
        raise NotImplementedError

    async def on_stop(self) -> None:
        """Clean up on a graceful stop (not after a crash)."""

    @property
    def ref(self) -> ActorRef[M]:
        """This actor's own address."""
        if self._ref is None:
            raise RuntimeError("the actor is not running")
        return self._ref

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` as a background task of this incarnation; its failure crashes the actor."""
        if self._nursery is None:
            raise RuntimeError("the actor is not running")
        self._nursery.start_soon(fn, *args)

    def stop(self) -> None:
        """Exit normally after the current message (a transient child is then not restarted)."""
        if self._mailbox is not None:
            self._mailbox.request_stop()


async def run_incarnation(
    actor: Actor[M], mailbox: Mailbox[M], ref: ActorRef[M], on_started: Callable[[], None]
) -> None:
    """Run ``actor`` on ``mailbox`` until a stop is requested; a crash propagates as an exception."""
    async with trio.open_nursery() as nursery:
        actor._ref, actor._mailbox, actor._nursery = ref, mailbox, nursery
        await actor.on_start()
        on_started()
        await _message_loop(actor, mailbox)
        await actor.on_stop()
        nursery.cancel_scope.cancel()


async def _message_loop(actor: Actor[M], mailbox: Mailbox[M]) -> None:
    with trio.CancelScope() as mailbox.loop_scope:
        await _handle_until_stopped(actor, mailbox)
    mailbox.loop_scope = None


async def _handle_until_stopped(actor: Actor[M], mailbox: Mailbox[M]) -> None:
    while (envelope := await mailbox.next()) is not None:
        message, reply = envelope
        if reply is not None:
            if not reply.pending:  # the asker gave up before we got to it
                continue
            mailbox.hold(reply)
        try:
            await actor.handle(message)
        except DomainError as error:
            # A domain error answers the asker; on a tell there is nobody to tell, and it is no crash.
            if reply is not None and reply.pending:
                reply.fail(error)
        mailbox.handled += 1
