"""Ops shared by scenarios: the baseline's like-for-like requests."""

from __future__ import annotations

import json
from dataclasses import dataclass

from bench.harness.load import Done, HttpAnswer, HttpOp, OpFailed

__all__ = ["GetHealth", "PostEcho"]


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
