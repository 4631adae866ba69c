"""Waiting inside a request: long-polls bounded by a deadline and by the node's shutdown; task-end watches.

Long-poll handlers (claim, lock acquire, `stay` dispatch) must not hold a graceful shutdown for their whole
wait: `bounded(node, seconds)` is a cancel scope that ends at the deadline or as soon as the node starts
draining, whichever comes first. `wait_for_end` follows one task until a final status, fed by the node's
committed events (`node.event_sinks`) with a periodic re-read as a safety net.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import trio

from actors.dispatcher.messages import DispatcherMsg, GetTask, TaskView
from actors.locks.messages import LockMsg
from actors.storage import StoredEvent
from orch.http.problems import ServiceUnavailable
from orch.http.task_views import FINAL_STATUSES
from orch.node import Node
from runtime import ActorRef

__all__ = ["RECHECK_S", "bounded", "dispatcher_of", "locks_of", "wait_for_end", "within"]

T = TypeVar("T")

RECHECK_S = 5.0  # a follower re-reads its task this often even without an event (belt and braces)
_FINAL_EVENTS = frozenset(f"task.{s.value}" for s in FINAL_STATUSES)


def dispatcher_of(node: Node) -> ActorRef[DispatcherMsg]:
    """The node's dispatcher, or 503 when this node runs without one."""
    if node.dispatcher is None:
        raise ServiceUnavailable("This node runs no dispatcher.")
    return node.dispatcher


def locks_of(node: Node) -> ActorRef[LockMsg]:
    """The node's lock manager, or 503 when this node runs without one."""
    if node.locks is None:
        raise ServiceUnavailable("This node runs no lock manager.")
    return node.locks


class _NodeWaits:
    """Per-node state: scopes to cancel at shutdown, and followers of tasks keyed by task id."""

    def __init__(self, node: Node) -> None:
        self.scopes: set[trio.CancelScope] = set()
        self.followers: dict[str, set[trio.Event]] = {}
        node.event_sinks.append(self.on_events)
        if node.nursery is not None:
            node.nursery.start_soon(self._cancel_at_shutdown, node)

    async def _cancel_at_shutdown(self, node: Node) -> None:
        await node.shutdown_requested.wait()
        for scope in list(self.scopes):
            scope.cancel()

    def on_events(self, events: Sequence[StoredEvent]) -> None:
        followers = self.followers
        if not followers:  # the common case: nobody follows a task, the batch is not looked at
            return
        for event in events:
            if event.type in _FINAL_EVENTS and event.subject is not None:
                for waiter in followers.get(event.subject, ()):
                    waiter.set()


_WAITS: weakref.WeakKeyDictionary[Node, _NodeWaits] = weakref.WeakKeyDictionary()


def _waits(node: Node) -> _NodeWaits:
    waits = _WAITS.get(node)
    if waits is None:
        waits = _WAITS[node] = _NodeWaits(node)
    return waits


@contextmanager
def bounded(node: Node, seconds: float) -> Iterator[trio.CancelScope]:
    """A cancel scope that ends after `seconds` or when the node starts draining (see `cancelled_caught`)."""
    waits = _waits(node)
    with trio.move_on_after(seconds) as scope:
        if node.draining:
            scope.cancel()
        waits.scopes.add(scope)
        try:
            yield scope
        finally:
            waits.scopes.discard(scope)


async def within(node: Node, seconds: float, fn: Callable[[], Awaitable[T]]) -> T | None:
    """`await fn()`, or None if `seconds` pass or the node starts draining first."""
    result: T | None = None
    with bounded(node, seconds):
        result = await fn()
    return result


async def wait_for_end(node: Node, task_id: str) -> TaskView:
    """Return the task once it has a final status (succeeded, cancelled, dead); the caller bounds the wait."""
    waits = _waits(node)
    ref = dispatcher_of(node)
    while True:
        event = trio.Event()
        waits.followers.setdefault(task_id, set()).add(event)
        try:
            # Registered before reading: a final event committed after this read wakes us; one committed
            # before it is visible to the read.
            task: TaskView = await ref.ask(lambda reply: GetTask(task_id, reply))
            if task.status in FINAL_STATUSES:
                return task
            with trio.move_on_after(RECHECK_S):
                await event.wait()
        finally:
            followers = waits.followers.get(task_id)
            if followers is not None:
                followers.discard(event)
                if not followers:
                    del waits.followers[task_id]
