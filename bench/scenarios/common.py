"""Ops shared by scenarios: the baseline's like-for-like requests."""

from __future__ import annotations

import json
from dataclasses import dataclass

from bench.harness.load import Done, HttpAnswer, HttpOp, OpFailed
from bench.harness.report import Check, ScenarioResult
from bench.harness.runner import Bench
from bench.harness.verify import check_acks_stored, stored_values

__all__ = ["GetHealth", "PostEcho", "errors_check", "expect_status", "verify_acks_stored"]


@dataclass(frozen=True, slots=True)
class GetHealth(HttpOp):
    """GET /health, expecting 200 (the node and the baseline both serve it)."""

    path: str = "/health"


@dataclass(frozen=True, slots=True)
class PostEcho(HttpOp):
    """POST a dispatch-sized JSON body to the baseline's /echo (201): the like-for-like reference for
    POST scenarios. Acknowledges `seq`, so the harness's bookkeeping is exercised the same way."""

    method: str = "POST"
    path: str = "/echo"
    expect: tuple[int, ...] = (201,)

    def request(self, seq: int) -> tuple[str, str, bytes | None]:
        """A body about the size of a dispatch."""
        body = {"core_id": f"CORE_{seq % 16:02d}", "priority": 5, "metadata": {"bench_seq": seq}}
        return self.method, self.path, json.dumps(body).encode()

    def accept(self, response: HttpAnswer, seq: int) -> Done:
        """201 with the size it read."""
        if response.status_code not in self.expect:
            raise OpFailed(f"HTTP {response.status_code}", response.text[:300])
        if not response.json().get("received"):
            raise OpFailed("empty echo")
        return Done(acks=(str(seq),))


def expect_status(response: HttpAnswer, *statuses: int) -> None:
    """Raise `OpFailed` unless the answer has one of ``statuses``."""
    if response.status_code not in statuses:
        raise OpFailed(f"HTTP {response.status_code}", response.text[:300])


def verify_acks_stored(bench: Bench, acked: list[str], what: str) -> None:
    """Stop the node (SIGTERM), then check that every acknowledged id is a task in its store."""
    bench.stop_node()
    stored = stored_values(bench.db_path, "SELECT id FROM tasks")
    bench.result.checks.append(check_acks_stored(f"every acknowledged {what} is in the store", acked, stored))


def errors_check(result: ScenarioResult) -> None:
    """No failed request in any run; and the medians, which the targets are read from."""
    errors = sum(m.errors for m in result.runs)
    result.checks.append(Check("no failed requests", errors == 0, f"{errors} errors in all runs"))
    result.finish()
