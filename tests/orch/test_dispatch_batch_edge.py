"""POST /dispatch/batch served by the Edge without Quart (`DispatchBatchEndpoint`): every answer — success
and each error class — equals the Quart route's (status, the headers that matter, body)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from orch.server import RunningNode

from .auth_helpers import auth_headers
from .edge_helpers import Sender, answer_shape, both_ways, json_post
from .helpers import StartNode

pytestmark = pytest.mark.integration

RAW = ("POST", "/dispatch/batch")
VOLATILE = frozenset({"task_id", "estimated_start", "queue_position", "not_before"})
LIMIT = 4096


def post(body: Any = None, *, content: bytes | None = None, **headers: str) -> Sender:
    return json_post("/dispatch/batch", body, content=content, **headers)


async def compared(node: RunningNode, send: Sender) -> tuple[dict[str, Any], dict[str, Any]]:
    raw, quart = await both_ways(node, RAW, send)
    return answer_shape(raw, VOLATILE), answer_shape(quart, VOLATILE)


@pytest.fixture
async def small_node(start_node: StartNode) -> RunningNode:
    return await start_node(**{"server.max_body_bytes": LIMIT})


TASKS = [
    {"core_id": "EQ", "priority": 3, "metadata": {"k": "é"}},
    {"coreId": "EQ", "maxAttempts": 2, "delay": 5},
    {"core_id": "EQ2", "timeout": 9.5, "stay": True},
]
CASES = {
    "created": ({"tasks": TASKS}, None, {}),
    "bad_field_named_by_item": ({"tasks": [{"core_id": "EQ"}, {"core_id": "EQ", "priority": 101}]}, None, {}),
    "unknown_item_member": ({"tasks": [{"core_id": "EQ", "colour": "red"}]}, None, {}),
    "item_not_an_object": ({"tasks": [{"core_id": "EQ"}, 7]}, None, {}),
    "unknown_member": ({"tasks": [{"core_id": "EQ"}], "extra": 1}, None, {}),
    "empty_tasks": ({"tasks": []}, None, {}),
    "no_tasks": ({}, None, {}),
    "tasks_not_a_list": ({"tasks": {"core_id": "EQ"}}, None, {}),
    "too_many_tasks": ({"tasks": [{}] * 1001}, None, {}),
    "not_an_object": ([{"core_id": "EQ"}], None, {}),
    "malformed_json": (None, b'{"tasks": [', {"Content-Type": "application/json"}),
    "not_json": (None, b"tasks=EQ", {"Content-Type": "text/plain"}),
    "empty_body": (None, b"", {"Content-Type": "application/json"}),
    "too_large": (None, b'{"tasks": [], "pad": "' + b"x" * LIMIT + b'"}', {}),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_an_authenticated_batch_is_answered_as_the_quart_route_would(
    small_node: RunningNode, case: str
) -> None:
    body, content, headers = CASES[case]
    auth = await auth_headers(small_node, "operator")
    raw, quart = await compared(small_node, post(body, content=content, **auth, **headers))
    assert raw == quart
    assert raw["headers"]["x-request-id"] == "req-1"
    if raw["status"] < 300:
        assert "ratelimit" in raw["header_names"]


async def test_a_created_batch_is_201_with_every_task_in_order(small_node: RunningNode) -> None:
    auth = await auth_headers(small_node, "operator")
    keyed = [*TASKS[:2], {**TASKS[2], "idempotency_key": "key-1"}]
    raw, quart = await compared(small_node, post({"tasks": keyed}, **auth))
    assert raw["status"] == 201
    tasks = raw["body"]["tasks"]
    assert [(t["core_id"], t["priority"], t["max_attempts"]) for t in tasks] == [
        ("EQ", 3, 3), ("EQ", 0, 2), ("EQ2", 0, 3),
    ]  # fmt: skip
    assert [t["created"] for t in tasks] == [True, True, True]
    # the key was used by the raw call, so the Quart call found its task
    assert [t["created"] for t in quart["body"]["tasks"]] == [True, True, False]


@pytest.mark.parametrize(
    ("role", "authorization"),
    [(None, None), (None, "Bearer not-a-token"), ("viewer", None)],
)
async def test_refused_callers_hear_the_same_401_or_403(
    small_node: RunningNode, role: str | None, authorization: str | None
) -> None:
    headers = await auth_headers(small_node, role) if role else {}
    if authorization is not None:
        headers["Authorization"] = authorization
    raw, quart = await compared(small_node, post({"tasks": [{"core_id": "EQ"}]}, **headers))
    assert raw == quart
    assert raw["status"] in (401, 403)


async def test_an_over_limit_caller_hears_the_same_429(start_node: StartNode) -> None:
    node = await start_node(**{"security.rate_limits": ["write=1/60"]})
    auth = await auth_headers(node, "admin")
    body = {"tasks": [{"core_id": "EQ"}]}
    async with httpx.AsyncClient(base_url=node.url) as http:
        assert (await http.post("/dispatch/batch", json=body, headers=auth)).status_code == 201
    raw, quart = await compared(node, post(body, **auth))
    assert raw == quart
    assert raw["status"] == 429 and raw["headers"]["retry-after"] is not None
