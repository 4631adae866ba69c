"""The scenario registry: command-line name -> where its `run(options)` lives, its description and its
concurrency levels (full and quick mode). Modules are imported only when their scenario runs."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.harness.report import ScenarioResult
    from bench.harness.runner import Options

__all__ = ["SCENARIOS", "Scenario"]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One command: `python -m bench <name>`."""

    entry: str  # "module:function"
    description: str
    default_clients: tuple[int, ...]
    quick_clients: tuple[int, ...]

    def load(self) -> Callable[[Options], ScenarioResult]:
        """The scenario's run function."""
        module, _, function = self.entry.partition(":")
        run: Callable[[Options], ScenarioResult] = getattr(importlib.import_module(module), function)
        return run


SCENARIOS: dict[str, Scenario] = {
    "health": Scenario(
        "bench.scenarios.health:run",
        "GET /health, node vs the hello-world baseline (and wrk when installed)",
        (1, 10, 50, 100),
        (50,),
    ),
    "dispatch": Scenario(
        "bench.scenarios.dispatch:run_single",
        "authenticated POST /dispatch (durable) vs the baseline's POST /echo; every ack stored",
        (10, 50, 100),
        (50,),
    ),
    "dispatch-batch": Scenario(
        "bench.scenarios.dispatch:run_batch",
        "POST /dispatch/batch (100 tasks per request) vs the same body to /echo; every ack stored",
        (1, 4, 16),
        (4,),
    ),
    "cycle": Scenario(
        "bench.scenarios.cycle:run_cycle",
        "full cycle over HTTP: dispatchers + 20 workers (claim, heartbeat, report); all stored succeeded",
        (10, 50),
        (20,),
    ),
    "ws-dispatch": Scenario(
        "bench.scenarios.wsdispatch:run_dispatch",
        "WS /ws/dispatch, 20 dispatches in flight per socket; every ack stored (node only)",
        (4, 16),
        (8,),
    ),
    "ws-cycle": Scenario(
        "bench.scenarios.wsdispatch:run_cycle",
        "full cycle over websockets: ws dispatchers + 20 ws workers (claim up to 100, heartbeat, report)",
        (4, 8),
        (4,),
    ),
    "webhooks": Scenario(
        "bench.scenarios.webhooks:run",
        "signed POST /webhook (task.progress for a claimed task) vs the same body to /echo",
        (10, 50),
        (20,),
    ),
    "locks": Scenario(
        "bench.scenarios.locks:run",
        "lock acquire (waiting) + release, 8 contended resources; exclusion checked from timestamps",
        (8, 32, 64),
        (32,),
    ),
    "soak": Scenario(
        "bench.scenarios.soak:run",
        "steady mixed load for --minutes (dispatch, workers, health, SSE): flat RSS, no error",
        (1,),
        (1,),
    ),
    "sse": Scenario(
        "bench.scenarios.fanout:run_sse",
        "SSE fan-out: subscribers (the 'clients' levels) each receiving every event",
        (1000, 5000, 10000),
        (200,),
    ),
    "ws-feed": Scenario(
        "bench.scenarios.fanout:run_ws",
        "websocket feed fan-out, same as sse over WS /ws/events",
        (1000, 5000, 10000),
        (200,),
    ),
}
