"""POST /webhook's rate limit by client address: taken in the same security round trip as the signature
check, answered 429 with the standard headers, and not counted as a verification."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .helpers import StartNode

pytestmark = pytest.mark.integration

SECRET = "x-signature-secret-ratelimit-01"


def signed(body: bytes) -> dict[str, str]:
    t = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Signature": f"t={t},v1={digest}"}


def webhook_counts(text: str) -> dict[tuple[str, str], float]:
    return {
        (s.labels["scheme"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "orch_webhooks_total" and s.value
    }


async def test_deliveries_over_the_webhook_limit_are_429_and_not_verified(start_node: StartNode) -> None:
    node = await start_node(
        **{
            "security.webhook_secret": SECRET,
            "security.rate_limits": ["webhook=2/60"],
            "security.metrics_anonymous": True,
        }
    )
    async with httpx.AsyncClient(base_url=node.url) as http:
        answers = []
        for n in range(3):
            body = json.dumps({"event": "ping", "n": n}).encode()
            answers.append(await http.post("/webhook", content=body, headers=signed(body)))
        metrics = await http.get("/metrics")
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[2]
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Policy"].startswith('"webhook"')
    assert refused.headers["RateLimit"].startswith('"webhook";r=0')
    # Refused before verification: only the two accepted deliveries were verifications.
    assert webhook_counts(metrics.text) == {("signature", "accepted"): 2.0}


async def test_a_bad_signature_still_spends_a_unit_of_the_limit(start_node: StartNode) -> None:
    node = await start_node(**{"security.webhook_secret": SECRET, "security.rate_limits": ["webhook=1/60"]})
    body = json.dumps({"event": "ping"}).encode()
    forged = {**signed(body), "X-Signature": "t=1,v1=" + "0" * 64}
    async with httpx.AsyncClient(base_url=node.url) as http:
        first = await http.post("/webhook", content=body, headers=forged)
        second = await http.post("/webhook", content=body, headers=signed(body))
    assert (first.status_code, second.status_code) == (401, 429)
