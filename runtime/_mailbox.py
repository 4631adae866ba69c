"""The mailbox behind an ``ActorRef``: owned by the runtime, it outlives every incarnation of its actor."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import trio

from ._errors import ActorStopped, MailboxFull
from ._reply import Reply

M = TypeVar("M")

Envelope = tuple[M, Reply[object] | None]

# A busy actor takes queued messages without yielding, but still yields this often so it cannot starve
# the other tasks.
_CHECKPOINT_EVERY = 32


@dataclass(frozen=True, slots=True)
class MailboxStats:
    """An immutable snapshot of a mailbox."""

    actor: str
    depth: int
    capacity: int
    handled: int
    held_replies: int
    open: bool


class Mailbox(Generic[M]):
    """A bounded trio memory channel plus the bookkeeping that must survive restarts.

    The mailbox keeps both ends of its channel for its whole life, so a restart never drops the buffered
    messages (closing the last receive end of a trio channel would). ``held`` tracks the replies an
    incarnation has taken out of the queue and not answered yet: they fail with ``ActorCrashed`` if it dies.
    """

    def __init__(self, name: str, capacity: int) -> None:
        if capacity < 1 or (capacity != math.inf and int(capacity) != capacity):
            raise ValueError(f"mailbox capacity must be a positive integer, got {capacity!r}")
        self.name = name
        self.capacity = capacity
        self.handled = 0
        self.held: set[Reply[object]] = set()
        self.stop_requested = False
        # The incarnation's message loop runs in this scope; it is cancelled only while idle in next().
        self.loop_scope: trio.CancelScope | None = None
        self._waiting = False
        self._since_checkpoint = 0
        self._open = True
        self._send, self._receive = trio.open_memory_channel[Envelope[M]](capacity)

    # --- senders -------------------------------------------------------------------------------------
    async def put(self, envelope: Envelope[M]) -> None:
        """Queue ``envelope``, waiting for room; ``ActorStopped`` if the actor is stopped for good.

        When there is room this returns without yielding: a checkpoint per message would cost a task
        switch each, and a sender that fills the mailbox blocks (and so yields) anyway.
        """
        if not self._open:
            raise ActorStopped(self.name)
        try:
            self._send.send_nowait(envelope)
            return
        except trio.WouldBlock:
            pass
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ActorStopped(self.name) from None
        try:
            await self._send.send(envelope)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ActorStopped(self.name) from None

    def put_nowait(self, envelope: Envelope[M]) -> None:
        """Queue ``envelope`` or raise ``MailboxFull`` / ``ActorStopped`` at once."""
        if not self._open:
            raise ActorStopped(self.name)
        try:
            self._send.send_nowait(envelope)
        except trio.WouldBlock:
            raise MailboxFull(self.name, self.capacity) from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ActorStopped(self.name) from None

    # --- the running incarnation -----------------------------------------------------------------------
    async def next(self) -> Envelope[M] | None:
        """The next envelope, or ``None`` once a stop was requested (checked between messages)."""
        if self.stop_requested:
            return None
        self._since_checkpoint += 1
        if self._since_checkpoint < _CHECKPOINT_EVERY:
            try:
                return self._receive.receive_nowait()
            except trio.WouldBlock:
                pass
        self._since_checkpoint = 0
        self._waiting = True
        try:
            return await self._receive.receive()
        finally:
            self._waiting = False

    def request_stop(self) -> None:
        """Ask the running incarnation to exit after the message it is handling."""
        self.stop_requested = True
        if self._waiting and self.loop_scope is not None:
            self.loop_scope.cancel()  # only the idle receive runs in this scope now

    def hold(self, reply: Reply[object]) -> None:
        """Track ``reply`` as taken by the actor until it is answered or abandoned."""
        self.held.add(reply)
        reply._on_settle = self.held.discard

    def fail_held(self, make_error: Callable[[], BaseException]) -> None:
        """Fail every held reply with a fresh ``make_error()`` (the incarnation that held them is gone)."""
        held, self.held = self.held, set()
        for reply in held:
            reply._on_settle = None
            if reply.pending:
                reply.fail(make_error())

    def begin_incarnation(self) -> None:
        """Reset per-incarnation flags; reopen a mailbox that was closed for good."""
        self.stop_requested = False
        if not self._open:
            self._open = True
            self._send, self._receive = trio.open_memory_channel[Envelope[M]](self.capacity)

    def close(self) -> None:
        """Stop for good: refuse new messages, wake blocked senders and fail every queued ask."""
        if not self._open:
            return
        self._open = False
        send, receive = self._send, self._receive
        send.close()
        while True:
            try:
                _, reply = receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            if reply is not None and reply.pending:
                reply.fail(ActorStopped(self.name))
        receive.close()

    def statistics(self) -> MailboxStats:
        """An immutable snapshot: depth, capacity, messages handled, replies held."""
        depth = self._send.statistics().current_buffer_used if self._open else 0
        return MailboxStats(
            actor=self.name,
            depth=depth,
            capacity=int(self.capacity) if self.capacity != math.inf else -1,
            handled=self.handled,
            held_replies=len(self.held),
            open=self._open,
        )
