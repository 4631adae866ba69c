"""Which actors a node runs, in start order, and how supervision shows up in logs, metrics and events.

To add an actor: open its store on `node.database()` in its `on_start` (or migrate here), append its
`worker(...)` spec in `actor_specs` (start order = list order; stop order is the reverse), keep the spec's
`.ref` on the node for the HTTP layer, and register the error mapping of its `DomainError`s in
`orch.http.errors`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from actors.dispatcher.actor import DispatcherActor
from actors.dispatcher.sqlite_ops import Rules
from actors.dispatcher.sqlite_store import SqliteTaskStore
from actors.locks.actor import LockManager
from actors.storage import Database, Tx
from orch.monitoring import monitor_specs
from orch.security_wiring import security_spec
from runtime import (
    ChildCrashed,
    ChildRestarted,
    ChildSpec,
    ChildStatus,
    RuntimeEvent,
    SupervisorGaveUp,
    SupervisorStatus,
    worker,
)

if TYPE_CHECKING:
    from orch.node import Node

__all__ = ["RuntimeEventRecorder", "actor_specs", "mailbox_refresher"]

_log = logging.getLogger("orch.supervisor")


def actor_specs(node: Node) -> list[ChildSpec]:
    """The root supervisor's children, in start order."""
    db = node.database()
    dispatcher = worker("dispatcher", lambda: _NodeDispatcher(db), capacity=4096)
    locks = worker("locks", lambda: LockManager(db), capacity=4096)
    node.dispatcher, node.locks = dispatcher.ref, locks.ref
    # security first: it authorises every request; the monitor after what it samples
    return [security_spec(node), dispatcher, locks, *monitor_specs(node)]


class _NodeDispatcher(DispatcherActor):
    """The dispatcher over the node's database; migrates the tasks schema before it starts."""

    def __init__(self, db: Database) -> None:
        super().__init__(SqliteTaskStore(db, Rules()))
        self._db = db

    async def on_start(self) -> None:
        await SqliteTaskStore.open(self._db)  # idempotent forward migrations
        await super().on_start()


class RuntimeEventRecorder:
    """The supervisor's `on_event`: log it, count it, and store it as an `actor.*` event."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def __call__(self, event: RuntimeEvent) -> None:
        actors = self.node.metrics.actors
        match event:
            case ChildCrashed(supervisor=sup, child=child, failure=failure):
                actors.crashes.labels(child).inc()
                _log.error(
                    "actor %s crashed: %s", child, failure.type, extra={"actor": child, "supervisor": sup}
                )
                self._store("actor.crashed", child, {"supervisor": sup, "error": failure.type})
            case ChildRestarted(supervisor=sup, child=child, restarts=n, delay=delay, reason=reason):
                actors.restarts.labels(child, reason).inc()
                _log.warning(
                    "actor %s restarted (%s, #%d after %.2f s)",
                    child,
                    reason,
                    n,
                    delay,
                    extra={"actor": child},
                )
                self._store("actor.restarted", child, {"supervisor": sup, "restarts": n, "reason": reason})
            case SupervisorGaveUp(supervisor=sup, child=child):
                _log.critical("supervisor %s gave up after repeated failures of %s", sup, child)
                self._store("actor.escalated", child, {"supervisor": sup})

    def _store(self, type_: str, subject: str, data: dict[str, Any]) -> None:
        # on_event is synchronous and runs inside the supervisor: write from a node background task.
        db, nursery = self.node.db, self.node.nursery
        if db is None or nursery is None:
            return

        def op(tx: Tx) -> None:
            tx.emit(type_, subject=subject, data=data)

        async def write() -> None:
            try:
                await db.write(op)
            except Exception:
                _log.warning("could not store %s event for %s", type_, subject, exc_info=True)

        nursery.start_soon(write)


def mailbox_refresher(node: Node) -> Callable[[], None]:
    """A metrics refresh hook copying the tree's mailbox depths and counters into gauges."""

    def refresh() -> None:
        if node.supervisor is not None:
            _refresh_tree(node, node.supervisor.status())

    return refresh


def _refresh_tree(node: Node, status: SupervisorStatus) -> None:
    for child in status.children:
        if child.supervisor is not None:
            _refresh_tree(node, child.supervisor)
        else:
            _refresh_child(node, child)


def _refresh_child(node: Node, child: ChildStatus) -> None:
    actors = node.metrics.actors
    if child.mailbox_depth is not None:
        actors.mailbox_depth.labels(child.id).set(child.mailbox_depth)
    if child.mailbox_capacity is not None:
        actors.mailbox_capacity.labels(child.id).set(child.mailbox_capacity)
    if child.messages_handled is not None:
        actors.messages_handled.labels(child.id).set(child.messages_handled)
