"""The one-shot reply slot carried by request messages."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Generic, TypeVar

import trio

T = TypeVar("T")

_TOKEN = object()


class _State(enum.Enum):
    PENDING = "pending"
    SETTLED = "settled"
    ABANDONED = "abandoned"


class Reply(Generic[T]):
    """Where a handler puts its answer to an ask.

    Created only by ``ActorRef.ask``. A handler answers with ``send`` or ``fail``, now or later (deferred
    replies serve long-polls and queues). Once the asker gave up (its cancel scope fired), the reply is
    *abandoned*: ``send``/``fail`` become silent no-ops and the ``on_abandon`` callbacks have run.
    """

    __slots__ = ("_error", "_on_abandon", "_on_settle", "_state", "_value", "_waiter")

    def __init__(self, token: object) -> None:
        if token is not _TOKEN:
            raise TypeError("Reply objects are created by ActorRef.ask")
        self._waiter: trio.lowlevel.Task | None = None
        self._state = _State.PENDING
        self._value: T | None = None
        self._error: BaseException | None = None
        self._on_abandon: list[Callable[[], None]] = []
        self._on_settle: Callable[[Reply[T]], None] | None = None

    @property
    def abandoned(self) -> bool:
        """True once the asker stopped waiting."""
        return self._state is _State.ABANDONED

    @property
    def settled(self) -> bool:
        """True once an answer (value or error) was given."""
        return self._state is _State.SETTLED

    @property
    def pending(self) -> bool:
        """True while the asker still waits for an answer."""
        return self._state is _State.PENDING

    def send(self, value: T) -> bool:
        """Answer with ``value``; False if the asker gave up (the answer is dropped: undo what it granted)."""
        if self._state is _State.ABANDONED:
            return False
        self._check_pending()
        self._value = value
        self._settle()
        return True

    def fail(self, error: BaseException) -> bool:
        """Answer with an error, re-raised at the asker; False if the asker gave up (dropped)."""
        if self._state is _State.ABANDONED:
            return False
        self._check_pending()
        self._error = error
        self._settle()
        return True

    def on_abandon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` (synchronously) when the asker gives up; at once if it already has."""
        if self._state is _State.ABANDONED:
            callback()
        elif self._state is _State.PENDING:
            self._on_abandon.append(callback)

    def _check_pending(self) -> None:
        if self._state is not _State.PENDING:
            raise RuntimeError("this request was already answered")

    def _settle(self) -> None:
        self._state = _State.SETTLED
        self._on_abandon.clear()
        if self._waiter is not None:
            trio.lowlevel.reschedule(self._waiter)
            self._waiter = None
        if self._on_settle is not None:
            self._on_settle(self)

    def _abandon(self) -> None:
        if self._state is not _State.PENDING:
            return
        self._state = _State.ABANDONED
        callbacks, self._on_abandon = self._on_abandon, []
        if self._on_settle is not None:
            self._on_settle(self)
        for callback in callbacks:
            callback()

    async def _wait(self) -> T:
        # Parks the asker directly (rather than on a trio.Event): asks are the runtime's hot path.
        try:
            if self._state is _State.PENDING:
                self._waiter = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._abort_wait)
            else:
                # Already answered: yield without a cancellation point, so the answer (a claimed task, a
                # granted lock) is never lost to a deadline that fires in this instant.
                await trio.lowlevel.cancel_shielded_checkpoint()
        except BaseException:
            self._abandon()
            raise
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # settled with a value of type T

    def _abort_wait(self, _raise_cancel: object) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED


def new_reply() -> Reply[T]:
    """Create a reply slot (runtime-internal)."""
    return Reply(_TOKEN)
