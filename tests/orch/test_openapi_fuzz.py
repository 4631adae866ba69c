"""Every documented operation, fed junk built from its own OpenAPI entry, answers 4xx or 2xx — never a 5xx.

The generator walks `/openapi.json` of a real node: for each operation it fills path parameters, query
parameters and JSON bodies with values drawn from the documented schema, mutated (wrong types, extremes,
unknown fields, broken JSON, wrong content types). Seeded, so a failure names the case that reproduces it.
"""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import quote

import pytest

from orch.server import RunningNode

from .task_helpers import role_client

pytestmark = pytest.mark.integration

CASES_PER_OPERATION = 6
SKIP_PATHS = {"/sse/events"}  # a stream: covered by the feed tests; fuzzing it would only wait for heartbeats
JUNK = [
    None,
    True,
    -1,
    0,
    2**63,
    1e308,
    "",
    "x" * 3000,
    "\x00",
    "../../etc/passwd",
    [],
    {},
    [1, "a"],
    {"a": {"b": []}},
]


def junk_for(schema: dict[str, Any], rng: random.Random, depth: int = 0) -> Any:
    """A value that sometimes fits `schema` and often does not."""
    if rng.random() < 0.35 or depth > 3:
        return rng.choice(JUNK)
    kind = schema.get("type")
    if "enum" in schema:
        return rng.choice([*schema["enum"], "not-a-member"])
    match kind:
        case "integer":
            return rng.choice([0, 1, -5, 10**12, schema.get("minimum", 0) - 1, schema.get("maximum", 10) + 1])
        case "number":
            return rng.choice([0.0, -0.001, 1e300, 3.5])
        case "boolean":
            return rng.choice([True, False, "yes"])
        case "string":
            return rng.choice(["WORK_AI_01", "a", "", "é" * 40, "2026-01-01T00:00:00Z", "-1"])
        case "array":
            items = schema.get("items", {})
            return [junk_for(items, rng, depth + 1) for _ in range(rng.randrange(4))]
        case _:
            props: dict[str, Any] = schema.get("properties", {})
            body = {name: junk_for(sub, rng, depth + 1) for name, sub in props.items() if rng.random() < 0.7}
            if rng.random() < 0.3:
                body[rng.choice(["junk", "__proto__", "coreId"])] = rng.choice(JUNK)
            return body


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    ops: list[tuple[str, str, dict[str, Any]]] = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            is_http = method in {"get", "post", "put", "delete", "patch"} and not op.get("x-websocket")
            if is_http and path not in SKIP_PATHS:
                ops.append((path, method.upper(), op))
    return ops


def build_request(path: str, op: dict[str, Any], rng: random.Random) -> tuple[str, dict[str, Any]]:
    url = path
    query: dict[str, str] = {}
    for param in op.get("parameters", []):
        value = junk_for(param.get("schema", {}), rng)
        text = value if isinstance(value, str) else json.dumps(value)
        if param.get("in") == "path":
            url = url.replace("{" + param["name"] + "}", quote(text or "x", safe=""))
        elif param.get("in") == "query" and rng.random() < 0.6:
            query[param["name"]] = text
    if "wait" in query:  # long-polls: keep every case short
        query["wait"] = "0"
    kwargs: dict[str, Any] = {"params": query}
    schema = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema")
    if schema is not None or rng.random() < 0.2:
        roll = rng.random()
        if roll < 0.15:
            kwargs["content"] = rng.choice([b"{", b"[]", b"\xff\xfe", b"null", b'{"a":1}' * 3])
            kwargs["headers"] = {"content-type": "application/json"}
        elif roll < 0.2:
            kwargs["content"] = b"core_id=x"
            kwargs["headers"] = {"content-type": "application/x-www-form-urlencoded"}
        else:
            body = junk_for(schema or {}, rng)
            if isinstance(body, dict):
                body.pop("wait", None)
                body.pop("stay", None)  # a stay would hold the request open until its deadline
            kwargs["json"] = body
    return url, kwargs


async def test_no_documented_operation_answers_a_5xx_to_junk(start_node: Any) -> None:
    running: RunningNode = await start_node()
    async with role_client(running, "admin") as http:
        document = (await http.get("/openapi.json")).json()
        ops = operations(document)
        assert len(ops) > 30, "the OpenAPI document lost its operations"
        failures: list[str] = []
        statuses: dict[int, int] = {}
        for index, (path, method, op) in enumerate(ops):
            for case in range(CASES_PER_OPERATION):
                seed = index * 1000 + case
                url, kwargs = build_request(path, op, random.Random(seed))
                if url.startswith("/auth/logout") or "/restart" in url:
                    continue  # would end the admin session or bounce an actor mid-run: covered elsewhere
                response = await http.request(method, url, **kwargs)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code >= 500 and response.status_code != 503:
                    answer = f"{response.status_code} {response.text[:200]}"
                    failures.append(f"seed {seed}: {method} {url} {kwargs} -> {answer}")
        assert failures == []
        assert sum(statuses.values()) >= 150, statuses
        assert any(400 <= s < 500 for s in statuses), statuses  # the junk was noticed
