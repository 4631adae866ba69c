"""Operator endpoints: the supervision tree, restarting one actor, queue statistics."""

from __future__ import annotations

from typing import Any

from quart import Response

from actors.dispatcher.messages import QueueStats
from orch.http.app import current_node, json_response
from orch.http.problems import NotFound, ServiceUnavailable
from orch.http.routing import Router
from orch.http.task_views import core_stats_json, iso
from orch.node import Node
from runtime import ChildStatus, Supervisor, SupervisorStatus

__all__ = ["admin", "child_json", "supervisor_json"]

admin = Router("admin")


def child_json(child: ChildStatus) -> dict[str, Any]:
    """One child of a supervisor; supervisors carry their own subtree under `supervisor`."""
    body: dict[str, Any] = {
        "id": child.id,
        "kind": child.kind,
        "state": child.state.value,
        "restart": child.restart.value,
        "restarts": child.restarts,
        "started_at": iso(child.started_at),
        "last_failure": None,
    }
    if child.last_failure is not None:
        failure = child.last_failure
        body["last_failure"] = {"type": failure.type, "message": failure.message, "at": iso(failure.at)}
    if child.supervisor is not None:
        body["supervisor"] = supervisor_json(child.supervisor)
    else:
        body["mailbox"] = {"depth": child.mailbox_depth, "capacity": child.mailbox_capacity}
        body["messages_handled"] = child.messages_handled
    return body


def supervisor_json(status: SupervisorStatus) -> dict[str, Any]:
    """A supervisor and its children, in start order."""
    return {
        "id": status.id,
        "strategy": status.strategy.value,
        "state": status.state.value,
        "children": [child_json(c) for c in status.children],
    }


def _supervisor(node: Node) -> Supervisor:
    if node.supervisor is None:
        raise ServiceUnavailable("The supervision tree is not running.")
    return node.supervisor


_TREE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "strategy": {"type": "string"},
        "state": {"type": "string"},
        "children": {"type": "array", "items": {"type": "object"}},
    },
}


@admin.get(
    "/supervisor",
    summary="The supervision tree",
    response_schema=_TREE_SCHEMA,
    responses={200: "Every supervisor and actor: state, restarts, last failure, uptime, mailbox"},
    auth="supervisor.read",
)
async def supervisor_tree() -> Response:
    """An immutable snapshot: per child state, restarts, last failure, start time, mailbox depth."""
    node = current_node()
    status = _supervisor(node).status()
    return json_response({**supervisor_json(status), "uptime_seconds": round(node.uptime(), 3)})


@admin.post(
    "/supervisor/actors/<actor_id>/restart",
    summary="Restart one actor",
    response_schema={"type": "object", "properties": {"actor": {"type": "object"}}},
    responses={200: "Stopped gracefully and started again", 404: "No such actor"},
    auth="actor.restart",
)
async def restart_actor(actor_id: str) -> Response:
    """Graceful stop (its grace period) and start; its address and queued messages survive."""
    sup = _supervisor(current_node())
    if not sup.knows(actor_id):
        raise NotFound(f"No actor {actor_id!r} in the supervision tree.")
    try:
        await sup.restart_child(actor_id)
    except LookupError:
        raise NotFound(f"No running actor {actor_id!r} in the supervision tree.") from None
    child = sup.status().find(actor_id)
    return json_response({"actor": child_json(child) if child is not None else {"id": actor_id}})


@admin.get(
    "/queues",
    summary="Queue statistics per core",
    response_schema={"type": "object", "properties": {"cores": {"type": "array"}, "taken_at": {}}},
    responses={200: "Depth per core and priority, oldest queued age, throughput, waiting workers"},
    auth="task.read",
)
async def queues() -> Response:
    """Only cores with tasks in flight or recent activity are listed."""
    node = current_node()
    if node.dispatcher is None:
        raise ServiceUnavailable("This node runs no dispatcher.")
    stats = await node.dispatcher.ask(QueueStats)
    return json_response(
        {"cores": [core_stats_json(c) for c in stats.cores], "taken_at": iso(stats.taken_at)}
    )
