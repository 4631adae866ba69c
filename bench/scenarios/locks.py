"""Lock acquire/release under contention: C clients over R resources (C/R clients per resource), each
call acquires (waiting) and releases. Checks mutual exclusion from the clients' own timestamps: per
resource, fences are unique and, ordered by fence, each holder got its grant after the previous holder
sent its release. Baseline: `POST /echo` twice per call (the same number of requests)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bench.harness.load import Call, ClientEnv, Done, Group, HttpAnswer, OpFailed
from bench.harness.report import Check, ScenarioResult
from bench.harness.runner import NODE, Bench, Options
from bench.scenarios.common import PostEcho

__all__ = ["AcquireRelease", "EchoTwice", "check_exclusion", "run"]

RESOURCES = 8
GROUP = "acquire+release"


def _expect(response: HttpAnswer, status: int) -> None:
    if response.status_code != status:
        raise OpFailed(f"HTTP {response.status_code}", response.text[:300])


@dataclass(frozen=True, slots=True)
class AcquireRelease:
    """Acquire `bench-<n>` (wait up to `wait` s, ttl `ttl` s), release at once. Acks
    'resource|fence|granted_at|release_sent_at' (wall clock) for the exclusion check."""

    resources: int = RESOURCES
    wait: float = 10.0
    ttl: float = 10.0

    @asynccontextmanager
    async def open(self, env: ClientEnv) -> AsyncIterator[Call]:
        """Clients are spread evenly over the resources."""
        resource = f"bench-{env.client_id % self.resources}"
        headers = {"Content-Type": "application/json"}
        acquire = json.dumps(
            {"owner": f"bench-c{env.client_id}", "ttl": self.ttl, "wait": self.wait}
        ).encode()

        async def call(seq: int) -> Done:
            granted = await env.http.request("POST", f"/locks/{resource}/acquire", acquire, headers)
            _expect(granted, 200)
            granted_at = time.time()
            grant = granted.json()
            release = json.dumps({"token": grant["token"]}).encode()
            released_at = time.time()
            _expect(await env.http.request("POST", f"/locks/{resource}/release", release, headers), 200)
            return Done(acks=(f"{resource}|{grant['fence']}|{granted_at!r}|{released_at!r}",))

        yield call


@dataclass(frozen=True, slots=True)
class EchoTwice(PostEcho):
    """Two baseline requests per call, like acquire + release."""

    @asynccontextmanager
    async def open(self, env: ClientEnv) -> AsyncIterator[Call]:
        """Two POST /echo per call."""
        async with PostEcho.open(self, env) as once:

            async def call(seq: int) -> Done:
                await once(seq)
                return await once(seq)

            yield call


def check_exclusion(acks: list[str]) -> Check:
    """Fences unique per resource; in fence order, every grant came after the previous release was sent."""
    by_resource: dict[str, list[tuple[int, float, float]]] = {}
    for ack in acks:
        resource, fence, granted, released = ack.split("|")
        by_resource.setdefault(resource, []).append((int(fence), float(granted), float(released)))
    problems = []
    for resource, grants in by_resource.items():
        grants.sort()
        fences = [g[0] for g in grants]
        if len(set(fences)) != len(fences):
            problems.append(f"{resource}: a fence was granted twice")
        for (f1, _, rel1), (f2, got2, _) in itertools.pairwise(grants):
            if got2 < rel1:
                problems.append(f"{resource}: fence {f2} granted before fence {f1}'s release was sent")
                break
    detail = f"{len(acks):,} grants over {len(by_resource)} resources"
    return Check(
        "locks: unique fences, no overlapping holders",
        bool(acks) and not problems,
        detail + (f"; {problems[:3]}" if problems else ""),
    )


def run(options: Options) -> ScenarioResult:
    """`python -m bench locks`."""
    with Bench("locks", options) as bench:
        if not bench.has_route("/locks/{resource}/acquire", "post"):
            bench.skip("node lock routes: not served yet")
            return bench.result
        acks: list[str] = []
        for clients in options.clients:
            for run_index in range(options.runs):
                for target in bench.targets(run_index):
                    is_node = target.name == NODE
                    op = AcquireRelease() if is_node else EchoTwice()
                    headers = bench.auth_headers() if is_node else {}
                    load, _ = bench.measure(
                        target, [Group(GROUP, op, clients)], run=run_index, headers=headers
                    )
                    if is_node:
                        acks += load.groups[GROUP].acks
        bench.result.checks.append(check_exclusion(acks))
        errors = sum(m.errors for m in bench.result.runs)
        bench.result.checks.append(Check("no failed requests", errors == 0, f"{errors} errors in all runs"))
    return bench.result
