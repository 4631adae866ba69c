"""Topic-based publish/subscribe for events, with a bounded, coalescing buffer per subscriber.

``Broadcast.publish`` is synchronous and never blocks: it appends the event to the buffer of every
matching subscriber and wakes the ones parked in ``receive_batch``. A subscriber that is behind gets
everything pending as one batch. A subscriber whose buffer is full when an event arrives is cut off: its
buffer is dropped and its next ``receive_batch`` raises ``Lagged`` carrying the seq of the last event it
received, so it can resume from the event store. A slow subscriber therefore never slows the publisher or
the other subscribers, and one that is never read (or never closed) costs at most ``capacity`` events
before it is cut off.

Usage::

    with broadcast.subscribe(["task.*"]) as sub:
        async for batch in sub:  # ends when the broadcast is closed
            ...
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

import trio
from trio.lowlevel import (
    Abort,
    RaiseCancelT,
    Task,
    cancel_shielded_checkpoint,
    checkpoint_if_cancelled,
    current_task,
    reschedule,
    wait_task_rescheduled,
)

from runtime._broadcast_router import Router, normalize_patterns

__all__ = ["Broadcast", "BroadcastStats", "Lagged", "Sequenced", "Subscription"]


class Sequenced(Protocol):
    """An event with a monotonic sequence number (the event store's ``seq``)."""

    @property
    def seq(self) -> int:
        """Position of the event in the event store."""
        ...


E = TypeVar("E", bound=Sequenced)


class Lagged(Exception):
    """The subscriber fell more than its capacity behind and was cut off.

    ``last_seq`` is the seq of the last event it received (``None`` if it received none): resume from the
    event store after it, then subscribe again.
    """

    def __init__(self, last_seq: int | None) -> None:
        super().__init__(f"subscriber fell behind and was cut off; last received seq: {last_seq}")
        self.last_seq = last_seq


@dataclass(frozen=True, slots=True)
class BroadcastStats:
    """Snapshot of a ``Broadcast``'s counters."""

    subscribers: int
    """Subscriptions currently receiving events."""
    published: int
    """Events published."""
    delivered: int
    """Events placed into subscriber buffers (one event to three subscribers counts three)."""
    lagged: int
    """Subscriptions cut off for falling behind."""


class _State(enum.Enum):
    OPEN = "open"
    LAGGED = "lagged"
    CLOSED = "closed"  # closed by its owner
    ENDED = "ended"  # the broadcast was closed


class Subscription(Generic[E]):
    """One subscriber's view of a ``Broadcast``; obtain it from ``Broadcast.subscribe``.

    A context manager (closed on exit) and an async iterator over batches (ends when the subscription or the
    broadcast is closed; ``Lagged`` propagates). Only one task may receive at a time.
    """

    __slots__ = ("_broadcast", "_buffer", "_capacity", "_patterns", "_state", "_waiter", "last_seq")

    def __init__(self, broadcast: Broadcast[E], patterns: tuple[str, ...], capacity: int) -> None:
        self._broadcast = broadcast
        self._patterns = patterns
        self._capacity = capacity
        self._buffer: list[E] = []
        self._waiter: Task | None = None
        self._state = _State.OPEN
        self.last_seq: int | None = None
        """Seq of the last event returned by ``receive_batch`` (``None`` before the first batch)."""

    @property
    def topics(self) -> tuple[str, ...]:
        """The topic patterns this subscription receives."""
        return self._patterns

    @property
    def capacity(self) -> int:
        """Most events that may be pending before the subscriber is cut off."""
        return self._capacity

    @property
    def pending(self) -> int:
        """Events buffered and not yet received."""
        return len(self._buffer)

    async def receive_batch(self) -> Sequence[E]:
        """Wait for at least one event, then return every pending event, oldest first.

        Raises ``Lagged`` once cut off, ``trio.EndOfChannel`` after the broadcast was closed and the pending
        events were received, ``trio.ClosedResourceError`` if this subscription was closed, and
        ``trio.BusyResourceError`` if another task is already waiting on it. Cancellation while waiting
        loses no events.
        """
        await checkpoint_if_cancelled()
        if self._waiter is not None:
            raise trio.BusyResourceError("another task is already receiving from this subscription")
        if self._buffer or self._state is not _State.OPEN:
            batch = self._take()
            await cancel_shielded_checkpoint()
            return batch
        self._waiter = current_task()
        # Woken by publish (events), by a close, or aborted by cancellation (nothing taken yet).
        await wait_task_rescheduled(self._abort)
        return self._take()

    def close(self) -> None:
        """Stop receiving; pending events are dropped and a waiting receiver gets ``ClosedResourceError``."""
        if self._state is _State.OPEN:
            self._broadcast._unsubscribe(self)
        self._state = _State.CLOSED
        self._buffer = []
        self._wake()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Sequence[E]:
        try:
            return await self.receive_batch()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None

    def _take(self) -> list[E]:
        batch = self._buffer
        if batch:
            self._buffer = []
            self.last_seq = batch[-1].seq
            return batch
        if self._state is _State.LAGGED:
            raise Lagged(self.last_seq)
        if self._state is _State.ENDED:
            raise trio.EndOfChannel
        raise trio.ClosedResourceError("this subscription is closed")

    def _cut_off(self) -> None:
        self._state = _State.LAGGED
        self._buffer = []
        self._wake()

    def _end(self) -> None:
        self._state = _State.ENDED
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            reschedule(waiter)

    def _abort(self, _raise_cancel: RaiseCancelT) -> Abort:
        self._waiter = None
        return Abort.SUCCEEDED


class Broadcast(Generic[E]):
    """Topic-based publish/subscribe hub; see the module docstring for the delivery guarantees."""

    __slots__ = ("_capacity", "_closed", "_delivered", "_lagged", "_published", "_router", "_subscriptions")

    def __init__(self, *, capacity: int = 1024) -> None:
        """``capacity`` is the default number of pending events a subscriber may hold before it is cut off."""
        _check_capacity(capacity)
        self._capacity = capacity
        self._router: Router[Subscription[E]] = Router()
        self._subscriptions: dict[Subscription[E], None] = {}
        self._closed = False
        self._published = 0
        self._delivered = 0
        self._lagged = 0

    def publish(self, topic: str, event: E) -> None:
        """Deliver ``event`` to every subscriber of ``topic``; never blocks.

        Subscribers whose buffer is full are cut off (``Lagged``) instead. Raises
        ``trio.ClosedResourceError`` if the broadcast is closed.
        """
        if self._closed:
            raise trio.ClosedResourceError("the broadcast is closed")
        subscribers = self._router.resolve(topic)
        self._published += 1
        self._delivered += len(subscribers)
        # The hot loop: touches Subscription internals directly to avoid a method call per delivery.
        for sub in subscribers:
            buffer = sub._buffer
            if len(buffer) < sub._capacity:
                buffer.append(event)
                waiter = sub._waiter
                if waiter is not None:
                    sub._waiter = None
                    reschedule(waiter)
            else:
                self._delivered -= 1
                self._lagged += 1
                self._unsubscribe(sub)
                sub._cut_off()

    def subscribe(
        self, topics: Collection[str] | None = None, *, capacity: int | None = None
    ) -> Subscription[E]:
        """Subscribe to ``topics`` (exact names or ``prefix*`` patterns; ``None`` for all).

        ``capacity`` overrides the broadcast's default buffer size for this subscriber.
        """
        if self._closed:
            raise trio.ClosedResourceError("the broadcast is closed")
        patterns = normalize_patterns(topics)
        if capacity is None:
            capacity = self._capacity
        _check_capacity(capacity)
        sub = Subscription(self, patterns, capacity)
        self._router.add(sub, patterns)
        self._subscriptions[sub] = None
        return sub

    def statistics(self) -> BroadcastStats:
        """A snapshot of the counters."""
        return BroadcastStats(
            subscribers=len(self._subscriptions),
            published=self._published,
            delivered=self._delivered,
            lagged=self._lagged,
        )

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    def close(self) -> None:
        """End every subscription (each still receives what is pending) and refuse further publishes."""
        if self._closed:
            return
        self._closed = True
        subscriptions = list(self._subscriptions)
        self._subscriptions.clear()
        self._router.clear()
        for sub in subscriptions:
            sub._end()

    def _unsubscribe(self, sub: Subscription[E]) -> None:
        if sub in self._subscriptions:
            del self._subscriptions[sub]
            self._router.remove(sub, sub._patterns)


def _check_capacity(capacity: int) -> None:
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
