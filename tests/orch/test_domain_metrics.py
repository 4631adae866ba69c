"""Domain metrics on GET /metrics of a real node: task/lock/security event counters, queue and lock gauges
(refreshed by the node's background task, never per scrape), webhook counts, bounded core cardinality."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from actors.storage import StoredEvent
from orch.domain_gauges import OTHER_CORE, CoreFigures, cap_cores
from orch.domain_metrics import EventMetrics
from orch.metrics import Metrics

from .helpers import StartNode
from .task_helpers import claim, dispatch, report, role_client

pytestmark = pytest.mark.integration

FAST = {"monitoring.metrics_refresh_interval": 0.05}
SIG_SECRET = "x-signature-secret-metrics-0123"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition text, keyed by (sample name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, None when the series is absent."""
    return samples.get((name, frozenset(labels.items())))


def series_of(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every series of one sample name."""
    return {labels: v for (n, labels), v in samples.items() if n == name}


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    return parse(response.text)


async def until(http: httpx.AsyncClient, check: Callable[[Samples], bool], limit: float = 10.0) -> Samples:
    """Scrape until `check` holds (bounded); the samples that satisfied it."""
    with trio.fail_after(limit):
        while True:
            samples = await scrape(http)
            if check(samples):
                return samples
            await trio.sleep(0.05)


def task_events(samples: Samples, type_: str) -> float:
    return value(samples, "orch_task_events_total", type=type_) or 0.0


def depth(samples: Samples, core: str, band: str) -> float | None:
    return value(samples, "orch_queue_depth", core=core, priority_band=band)


# ------------------------------------------------------------------------------------------ real node


async def test_task_lifecycle_moves_event_counters_and_queue_gauges(start_node: StartNode) -> None:
    node = await start_node(**FAST)
    async with role_client(node, "operator") as ops, role_client(node, "system") as worker:
        await dispatch(ops, "CORE_A", priority=5)
        await dispatch(ops, "CORE_A", priority=-3)
        await dispatch(ops, "CORE_B")
        samples = await until(
            ops, lambda s: depth(s, "CORE_A", "high") == 1 and depth(s, "CORE_B", "normal") == 1
        )
        assert depth(samples, "CORE_A", "low") == 1 and depth(samples, "CORE_A", "normal") == 0
        assert task_events(samples, "queued") == 3
        assert (value(samples, "orch_queue_oldest_age_seconds", core="CORE_A") or -1) >= 0
        assert value(samples, "orch_tasks_running", core="CORE_A") == 0

        claimed = await claim(worker, "CORE_A")
        assert claimed["task"]["priority"] == 5
        samples = await until(ops, lambda s: value(s, "orch_tasks_running", core="CORE_A") == 1)
        assert depth(samples, "CORE_A", "high") == 0 and depth(samples, "CORE_A", "low") == 1
        assert task_events(samples, "claimed") == 1

        assert (await report(worker, claimed, "running")).status_code == 200
        assert (await report(worker, claimed, "succeeded", result={"ok": True})).status_code == 200
        samples = await until(ops, lambda s: value(s, "orch_tasks_running", core="CORE_A") == 0)
        assert task_events(samples, "running") == 1
        assert task_events(samples, "succeeded") == 1
        assert task_events(samples, "failed") == 0  # every known type is exported from the start
        assert task_events(samples, "other") == 0
        assert value(samples, "orch_queue_cores") == 2


async def test_gauges_are_refreshed_by_the_background_task_not_by_scrapes(start_node: StartNode) -> None:
    node = await start_node(**{"monitoring.metrics_refresh_interval": 3600.0})
    async with role_client(node, "operator") as ops:
        first = await until(
            ops, lambda s: bool(series_of(s, "orch_domain_metrics_refreshed_timestamp_seconds"))
        )
        stamp = value(first, "orch_domain_metrics_refreshed_timestamp_seconds")
        await dispatch(ops, "CORE_LATE")
        for _ in range(5):
            samples = await scrape(ops)
            assert task_events(samples, "queued") == 1  # the event counter moves at once...
            assert depth(samples, "CORE_LATE", "normal") is None  # ...the gauges wait for the next refresh
            assert value(samples, "orch_domain_metrics_refreshed_timestamp_seconds") == stamp


async def test_security_events_are_counted_from_the_feed(start_node: StartNode) -> None:
    node = await start_node(**FAST)
    async with role_client(node, "system") as _:  # issuing a system token publishes security.token_issued
        async with httpx.AsyncClient(base_url=node.url) as http:
            samples = await until(
                http, lambda s: value(s, "orch_security_events_total", type="token_issued") == 1
            )
    assert value(samples, "orch_security_events_total", type="user_created") == 1  # the first admin
    assert value(samples, "orch_security_events_total", type="other") == 0


async def test_lock_metrics_follow_an_acquire_and_a_waiter(start_node: StartNode) -> None:
    node = await start_node(**FAST)
    second: list[httpx.Response] = []
    async with role_client(node, "operator") as ops:
        granted = await ops.post("/locks/db-migrate/acquire", json={"owner": "alpha", "ttl": 30})
        assert granted.status_code == 200, granted.text
        samples = await until(ops, lambda s: value(s, "orch_locks_held") == 1)
        assert value(samples, "orch_lock_events_total", type="acquired") == 1
        assert value(samples, "orch_lock_waiters") == 0
        assert value(samples, "orch_lock_wait_seconds_count") == 1

        async def wait_for_it() -> None:
            body = {"owner": "beta", "ttl": 30, "wait": 10}
            second.append(await ops.post("/locks/db-migrate/acquire", json=body))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_it)
            await until(ops, lambda s: value(s, "orch_lock_waiters") == 1)
            released = await ops.post("/locks/db-migrate/release", json={"token": granted.json()["token"]})
            assert released.status_code == 200, released.text
        assert second[0].status_code == 200, second[0].text
        samples = await until(ops, lambda s: value(s, "orch_lock_wait_seconds_count") == 2)
    assert value(samples, "orch_lock_waiters") == 0
    assert value(samples, "orch_locks_held") == 1  # beta holds it now
    assert value(samples, "orch_lock_events_total", type="released") == 1
    assert value(samples, "orch_lock_events_total", type="acquired") == 2
    assert (value(samples, "orch_lock_wait_seconds_sum") or 0) > 0  # beta waited


def x_signature(body: bytes, secret: str = SIG_SECRET) -> dict[str, str]:
    t = int(time.time())
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"t={t},v1={digest}"}


async def test_webhooks_are_counted_by_scheme_and_outcome(start_node: StartNode) -> None:
    node = await start_node(**{"security.webhook_secret": SIG_SECRET})
    ping = json.dumps({"event": "ping"}).encode()
    deliveries: list[tuple[Mapping[str, str], int]] = [
        (x_signature(ping), 200),
        (x_signature(ping, "wrong-secret-wrong-secret"), 401),
        ({}, 401),
        ({"X-Signature": "nonsense"}, 400),
    ]
    async with httpx.AsyncClient(base_url=node.url) as http:
        for headers, status in deliveries:
            answer = await http.post(
                "/webhook", content=ping, headers={"Content-Type": "application/json", **headers}
            )
            assert answer.status_code == status, answer.text
        replay = await http.post(
            "/webhook", content=ping, headers={"Content-Type": "application/json", **deliveries[0][0]}
        )
        assert replay.status_code == 409, replay.text
        samples = await scrape(http)

    def webhooks(scheme: str, outcome: str) -> float | None:
        return value(samples, "orch_webhooks_total", scheme=scheme, outcome=outcome)

    assert webhooks("signature", "accepted") == 1
    assert webhooks("signature", "bad_signature") == 1
    assert webhooks("signature", "bad_header") == 1
    assert webhooks("signature", "replayed") == 1
    assert webhooks("none", "bad_signature") == 1
    assert webhooks("github", "accepted") == 0
    count = value(samples, "orch_webhook_verification_duration_seconds_count", scheme="signature")
    assert count == 4


async def test_many_cores_are_capped_and_the_rest_summed_as_other(start_node: StartNode) -> None:
    node = await start_node(**FAST, **{"monitoring.metrics_max_cores": 3})
    async with role_client(node, "operator") as ops:
        for i in range(1, 7):  # CORE_i gets i queued tasks
            batch = [{"core_id": f"CORE_{i}"} for _ in range(i)]
            response = await ops.post("/dispatch/batch", json={"tasks": batch})
            assert response.status_code == 201, response.text
        samples = await until(ops, lambda s: value(s, "orch_queue_cores") == 6)
    cores = {dict(labels)["core"] for labels in series_of(samples, "orch_tasks_running")}
    assert cores == {"CORE_6", "CORE_5", OTHER_CORE}
    assert depth(samples, OTHER_CORE, "normal") == 1 + 2 + 3 + 4
    assert depth(samples, "CORE_6", "normal") == 6
    assert len(series_of(samples, "orch_queue_depth")) == 3 * 3  # cores x priority bands


# ------------------------------------------------------------------------------------------ pieces


def figures(core: str, queued: int, running: int = 0, age: float | None = None) -> CoreFigures:
    return CoreFigures(core, (0, queued, 0), age, running)


def test_capping_keeps_the_busiest_and_merges_the_rest() -> None:
    cores = [figures("a", 1, age=5.0), figures("b", 9), figures("c", 0, running=3, age=None)]
    cores += [figures("d", 4, age=50.0), figures(OTHER_CORE, 7, age=1.0)]
    capped = cap_cores(cores, 3)
    assert [c.core for c in capped] == ["b", "d", OTHER_CORE]
    assert capped[-1] == CoreFigures(OTHER_CORE, (0, 1 + 0 + 7, 0), 5.0, 3)  # a real "other" is merged too
    assert cap_cores(cores[:3], 3) == tuple(cores[:3])


def stored(seq: int, type_: str) -> StoredEvent:
    return StoredEvent(seq, 0.0, type_, type_.split(".")[0], None, None, {})


def test_unknown_event_types_count_as_other_and_foreign_families_are_ignored() -> None:
    metrics = Metrics(process_metrics=False)
    events = EventMetrics(metrics.registry)
    for seq, type_ in enumerate(("task.queued", "task.teleported", "lock.stolen", "actor.crashed", "weird")):
        events.record_many([stored(seq, type_)])
    get = metrics.registry.get_sample_value
    assert get("orch_task_events_total", {"type": "queued"}) == 1
    assert get("orch_task_events_total", {"type": "other"}) == 1
    assert get("orch_lock_events_total", {"type": "other"}) == 1
    assert get("orch_task_events_total", {"type": "teleported"}) is None


def test_a_batch_counts_as_its_events_recorded_one_by_one() -> None:
    types = (
        "task.queued",
        "task.claimed",
        "task.queued",
        "task.teleported",
        "lock.acquired",
        "actor.crashed",
    )
    wanted = (("task", "queued"), ("task", "claimed"), ("task", "other"), ("lock", "acquired"))
    counted = []
    for record_batch in (False, True):
        metrics = Metrics(process_metrics=False)
        events = EventMetrics(metrics.registry)
        batch = [stored(seq, type_) for seq, type_ in enumerate(types)]
        if record_batch:
            events.record_many(batch)
        else:
            for one in batch:
                events.record_many([one])
        get = metrics.registry.get_sample_value
        counted.append([get(f"orch_{family}_events_total", {"type": name}) for family, name in wanted])
    assert counted[0] == counted[1] == [2, 1, 1, 1]
