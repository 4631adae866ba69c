"""POST /webhook is served by the Edge without Quart (`WebhookEndpoint`): the same edge answers as a
Quart route — body limit, request id, problem+json, metrics and access-log route — and the raw ASGI
helpers it uses (`read_body`, `send_problem`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from orch.http.edge import REQUEST_ID_KEY, read_body, send_problem
from orch.http.problems import PayloadTooLarge, RequestTimeout, problem
from orch.http.webhook import read_delivery

from .helpers import StartNode, raw_exchange

SECRET = "x-signature-secret-edge-0123456"


def signed(body: bytes) -> dict[str, str]:
    t = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Signature": f"t={t},v1={digest}"}


@pytest.fixture
async def client(start_node: StartNode) -> AsyncIterator[httpx.AsyncClient]:
    node = await start_node(
        **{
            "security.webhook_secret": SECRET,
            "server.max_body_bytes": 512,
            "security.metrics_anonymous": True,
        }
    )
    async with httpx.AsyncClient(base_url=node.url) as http:
        yield http


@pytest.mark.integration
async def test_a_delivery_is_answered_with_the_request_id_and_counted_under_its_route(
    client: httpx.AsyncClient, access_records: list[logging.LogRecord]
) -> None:
    body = json.dumps({"event": "ping"}).encode()
    answer = await client.post("/webhook", content=body, headers={**signed(body), "X-Request-ID": "hook-1"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["X-Request-ID"] == "hook-1"
    assert answer.json() == {
        "accepted": True,
        "scheme": "signature",
        "delivery_id": None,
        "applied": False,
        "reason": "event 'ping' is not a task event; nothing to do",
    }
    metrics = (await client.get("/metrics")).text
    assert 'orch_http_requests_total{endpoint="/webhook",method="POST",status="200"} 1.0' in metrics
    # The edge counts and logs in the same step: the scrape saw the count, so the line is there too.
    assert [(r.method, r.route, r.status) for r in access_records][:1] == [("POST", "/webhook", 200)]  # type: ignore[attr-defined]


@pytest.mark.integration
async def test_oversized_bodies_are_413_problems_declared_or_streamed(client: httpx.AsyncClient) -> None:
    big = b"{" + b" " * 1024 + b"}"

    async def streamed() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield big[:300]

    declared = await client.post("/webhook", content=big, headers={**signed(big), "X-Request-ID": "big-1"})
    chunked = await client.post("/webhook", content=streamed(), headers=signed(big))
    for answer in (declared, chunked):
        assert answer.status_code == 413
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"] == "urn:orch:problem:payload-too-large"
        assert answer.json()["instance"] == "/webhook"
    assert declared.json()["request_id"] == "big-1"


@pytest.mark.integration
async def test_other_methods_still_go_through_the_router(client: httpx.AsyncClient) -> None:
    answer = await client.get("/webhook")
    assert answer.status_code == 405
    assert "POST" in answer.headers["Allow"]


def test_delivery_headers_are_read_in_one_pass_like_werkzeug_would() -> None:
    pairs = [
        (b"Content-Type", b"Application/JSON; charset=utf-8"),
        (b"X-Signature", b"t=1,v1=first"),
        (b"x-signature", b"t=1,v1=second"),
        (b"X-GitHub-Event", b"ping"),
        (b"Accept", b"*/*"),
    ]
    delivery = read_delivery(pairs, "203.0.113.5")
    assert delivery.signature_headers == {"x-signature": "t=1,v1=first"}
    assert (delivery.mimetype, delivery.github_event, delivery.client) == (
        "application/json",
        "ping",
        "203.0.113.5",
    )
    assert read_delivery([], "c").mimetype is None


def feeder(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    return receive


async def test_read_body_joins_chunks_and_enforces_the_limit() -> None:
    scope: dict[str, Any] = {"headers": []}
    parts = feeder(
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    )
    assert await read_body(scope, parts, limit=4, time_limit=10) == b"abcd"
    over = feeder({"type": "http.request", "body": b"abcde", "more_body": False})
    with pytest.raises(PayloadTooLarge):
        await read_body(scope, over, limit=4, time_limit=10)
    with pytest.raises(PayloadTooLarge):
        await read_body({"headers": [(b"content-length", b"5")]}, feeder(), limit=4, time_limit=10)
    # A non-ASCII "digit" (superscript two, in latin-1) is no length: the body decides.
    odd = {"headers": [(b"content-length", "\u00b2".encode("latin-1"))]}
    one = feeder({"type": "http.request", "body": b"ab", "more_body": False})
    assert await read_body(odd, one, limit=4, time_limit=10) == b"ab"


async def test_read_body_gives_up_after_its_time_limit(autojump_clock: trio.testing.MockClock) -> None:
    stalled = feeder({"type": "http.request", "body": b"ab", "more_body": True})
    with pytest.raises(RequestTimeout):
        await read_body({"headers": []}, stalled, limit=100, time_limit=60)


def channel(*messages: dict[str, Any]) -> Any:
    """A receive like hypercorn-trio's: a memory channel's bound `receive`, these messages queued."""
    send, receive = trio.open_memory_channel[dict[str, Any]](10)
    for message in messages:
        send.send_nowait(message)
    return receive.receive


async def test_read_body_takes_queued_messages_without_a_timer() -> None:
    # A zero time limit would be a 408 at once if read_body waited under its timer.
    parts = channel(
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False},
    )
    assert await read_body({"headers": []}, parts, limit=4, time_limit=0) == b"ab"
    over = channel({"type": "http.request", "body": b"abcde", "more_body": True})
    with pytest.raises(PayloadTooLarge):
        await read_body({"headers": []}, over, limit=4, time_limit=0)


async def test_read_body_is_complete_once_the_declared_length_arrived() -> None:
    declared = {"headers": [(b"content-length", b"2")]}
    first_only = channel({"type": "http.request", "body": b"ab", "more_body": True})
    assert await read_body(declared, first_only, limit=4, time_limit=0) == b"ab"
    streamed = feeder({"type": "http.request", "body": b"ab", "more_body": True})
    assert await read_body(declared, streamed, limit=4, time_limit=10) == b"ab"


async def test_read_body_waits_under_its_timer_for_what_is_not_queued_yet(
    autojump_clock: trio.testing.MockClock,
) -> None:
    send, receive = trio.open_memory_channel[dict[str, Any]](10)
    send.send_nowait({"type": "http.request", "body": b"ab", "more_body": True})

    async def rest_later() -> None:
        await trio.sleep(1)
        await send.send({"type": "http.request", "body": b"cd", "more_body": False})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(rest_later)
        assert await read_body({"headers": []}, receive.receive, limit=8, time_limit=60) == b"abcd"
    stalled = channel({"type": "http.request", "body": b"ab", "more_body": True})
    with pytest.raises(RequestTimeout):
        await read_body({"headers": []}, stalled, limit=100, time_limit=60)


@pytest.mark.integration
async def test_a_delivery_asking_to_close_the_connection_gets_eof(start_node: StartNode) -> None:
    # POST /webhook answers without the Edge's final-send shield (it never hands the request to Quart).
    running = await start_node(**{"security.webhook_secret": SECRET})
    body = json.dumps({"event": "ping"}).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in signed(body).items())
    request = (
        f"POST /webhook HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {len(body)}\r\n{head}\r\n"
    ).encode() + body
    data, eof = await raw_exchange(running.url, request, limit=3.0)
    assert data.startswith(b"HTTP/1.1 200"), data
    assert eof, "server kept the connection open after Connection: close"


async def test_send_problem_writes_the_problem_document_and_its_headers() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"path": "/webhook", REQUEST_ID_KEY: "r-1"}
    error = problem(409, "webhook-replayed", "webhook rejected: déjà vu", headers={"X-Extra": "1"})
    await send_problem(send, scope, error)
    start, body = sent
    assert start["status"] == 409
    assert (b"content-type", b"application/problem+json") in start["headers"]
    assert (b"x-extra", b"1") in start["headers"]
    assert json.loads(body["body"]) == {
        "type": "urn:orch:problem:webhook-replayed",
        "title": "Conflict",
        "status": 409,
        "detail": "webhook rejected: déjà vu",
        "instance": "/webhook",
        "request_id": "r-1",
    }


@pytest.mark.integration
async def test_the_quart_route_answers_like_the_raw_endpoint(start_node: StartNode) -> None:
    running = await start_node(**{"security.webhook_secret": SECRET})
    body = json.dumps({"event": "ping"}).encode()
    forged = {**signed(body), "X-Signature": "t=1,v1=" + "0" * 64}
    answers = []
    for app in (running.app._quart, running.app):  # Quart alone, then through the Edge (raw endpoint)
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
            good = await http.post("/webhook", content=body, headers=signed(body))
            bad = await http.post("/webhook", content=body, headers=forged)
        answers.append((good.status_code, good.json(), bad.status_code, bad.json()["type"]))
        body = json.dumps({"event": "ping", "again": True}).encode()  # a new delivery for the second app
    assert answers[0] == (
        200,
        {
            "accepted": True,
            "scheme": "signature",
            "delivery_id": None,
            "applied": False,
            "reason": "event 'ping' is not a task event; nothing to do",
        },
        401,
        "urn:orch:problem:bad-signature",
    )
    assert answers[0] == answers[1]
