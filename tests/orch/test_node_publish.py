"""`Node.publish_many`: a committed batch's events reach every sink in one call each, in seq order."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from actors.storage import StoredEvent
from orch.config import Config
from orch.domain_metrics import attach_domain_metrics
from orch.feeds.hub import attach_feeds
from orch.http.waiting import _waits
from orch.node import Node


def event(seq: int, type_: str, subject: str = "t1") -> StoredEvent:
    return StoredEvent(seq, 0.0, type_, type_.split(".")[0], subject, "core", {})


def test_every_sink_gets_the_batch_even_when_an_earlier_sink_fails() -> None:
    node = Node(Config())
    seen: list[list[int]] = []

    def broken(events: Sequence[StoredEvent]) -> None:
        raise RuntimeError("sink bug")

    node.event_sinks += [broken, lambda events: seen.append([e.seq for e in events])]
    node.publish_many([event(1, "task.queued"), event(2, "task.claimed")])
    node.publish_many([event(3, "task.running")])
    assert seen == [[1, 2], [3]]


async def test_the_node_sinks_see_a_batch_as_they_saw_its_events_one_by_one() -> None:
    node = Node(Config())
    hub = attach_feeds(node)
    metrics = attach_domain_metrics(node)
    waits = _waits(node)
    follower = trio.Event()
    waits.followers["t2"] = {follower}
    batch = [event(7, "task.queued"), event(8, "task.succeeded", "t2"), event(9, "task.succeeded", "t3")]
    with hub.broadcast.subscribe(["task.*"]) as sub:
        node.publish_many(batch)
        assert list(await sub.receive_batch()) == batch
    assert hub.last_seq == 9
    get = node.metrics.registry.get_sample_value
    assert get("orch_task_events_total", {"type": "queued"}) == 1
    assert get("orch_task_events_total", {"type": "succeeded"}) == 2
    assert follower.is_set()
    assert metrics.events is not None


def test_a_closed_hub_publishes_nothing_and_keeps_its_last_seq() -> None:
    node = Node(Config())
    hub = attach_feeds(node)
    hub.publish_many([event(1, "task.queued")])
    hub.close()
    hub.publish_many([event(2, "task.queued")])
    hub.publish_many([])
    assert hub.last_seq == 1
