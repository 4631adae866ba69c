"""Monitoring endpoints on a real node: alerts, silences, metric history, series, recoveries, rate limits."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import trio

from orch.server import RunningNode

from .auth_helpers import auth_headers
from .helpers import StartNode

FAST = {"monitoring.sample_interval": 1.0}


async def _client(node: RunningNode, role: str = "admin") -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=node.url, headers=await auth_headers(node, role))


async def _until(check: Any, *, limit: float = 15.0) -> Any:
    """Poll `check()` (async, returns a truthy value when done) every 0.2 s, at most `limit` seconds."""
    with trio.fail_after(limit):
        while True:
            result = await check()
            if result:
                return result
            await trio.sleep(0.2)


async def test_metric_history_holds_the_node_s_own_samples(start_node: StartNode) -> None:
    node = await start_node(**FAST)
    async with await _client(node, "viewer") as http:

        async def series() -> list[str]:
            body = (await http.get("/metrics/series")).json()
            return [k for k in body["series"] if k.startswith("actor_down")]

        keys = await _until(series)
        assert 'actor_down{actor="dispatcher"}' in keys
        history = await http.get(
            "/metrics/history", params={"series": 'actor_down{actor="dispatcher"}', "since": time.time() - 60}
        )
        assert history.status_code == 200, history.text
        points = history.json()["points"]
        assert points and all(value == 0.0 for _, value in points)
        refused = await http.get("/metrics/history", params={"series": "x", "since": "soon"})
        assert refused.status_code == 422 and "since" in refused.text


async def test_silences_are_created_listed_and_expired(start_node: StartNode) -> None:
    node = await start_node(**FAST)
    async with await _client(node, "operator") as http:
        created = await http.post(
            "/alerts/silences",
            json={"matchers": {"alertname": "HighCpu"}, "duration": 600, "comment": "deploy"},
        )
        assert created.status_code == 201, created.text
        silence = created.json()
        assert silence["created_by"] == "test-operator" and silence["active"]
        listed = (await http.get("/alerts/silences")).json()["silences"]
        assert [s["id"] for s in listed] == [silence["id"]]
        assert (await http.delete(f"/alerts/silences/{silence['id']}")).status_code == 204
        assert (await http.get("/alerts/silences")).json()["silences"] == []
        assert (await http.delete(f"/alerts/silences/{silence['id']}")).status_code == 404
        bad = await http.post("/alerts/silences", json={"matchers": {}, "duration": 60})
        assert bad.status_code == 422


async def test_viewer_reads_alerts_but_cannot_silence_or_change_limits(start_node: StartNode) -> None:
    node = await start_node(**FAST)
    async with await _client(node, "viewer") as http:
        assert (await http.get("/alerts")).json() == {"alerts": []}
        assert (await http.get("/alerts", params={"state": "firing"})).status_code == 200
        assert (await http.get("/alerts", params={"state": "burning"})).status_code == 422
        assert (await http.get("/recoveries")).json() == {"recoveries": []}
        silence = {"matchers": {"alertname": "X"}, "duration": 60}
        assert (await http.post("/alerts/silences", json=silence)).status_code == 403
        assert (await http.put("/settings/rate-limits", json={"limits": {"read": "1/60"}})).status_code == 403


async def test_rate_limit_change_is_versioned_and_applied(start_node: StartNode) -> None:
    node = await start_node(**FAST)
    async with await _client(node, "admin") as http:
        before = (await http.get("/settings/rate-limits")).json()
        assert before["version"] == 1 and before["limits"]["read"] == "1000000/60"
        changed = await http.put("/settings/rate-limits", json={"limits": {"read": "2/60"}})
        assert changed.status_code == 200, changed.text
        body = changed.json()
        assert body["version"] == 2 and body["limits"]["read"] == "2/60"
        assert body["limits"]["write"] == before["limits"]["write"]
        assert [v["version"] for v in body["history"]] == [2, 1]
        bad = await http.put("/settings/rate-limits", json={"limits": {"read": "lots"}})
        assert bad.status_code == 422 and "read" in bad.text
    async with await _client(node, "viewer") as http:
        statuses = [(await http.get("/alerts")).status_code for _ in range(4)]
        assert statuses[:2] == [200, 200] and 429 in statuses[2:]


async def test_monitoring_can_be_disabled(start_node: StartNode, tmp_path: Path) -> None:
    node = await start_node(**{"monitoring.enabled": False})
    assert node.node.monitoring is None
    async with await _client(node, "admin") as http:
        assert (await http.get("/alerts")).status_code == 503
        tree = (await http.get("/supervisor")).json()
        assert "monitor" not in [c["id"] for c in tree["children"]]
