"""POST /webhook against a real node: each signature scheme with golden signatures computed here with
hmac / PyNaCl directly (never orch's code), replays, malformed headers (always a 4xx), and the payload
applied to a real task through the dispatcher."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey

from orch.server import RunningNode

from .auth_helpers import auth_headers
from .helpers import StartNode

pytestmark = pytest.mark.integration

SIG_SECRET = "x-signature-secret-0123456789"
GITHUB_SECRET = "github-secret-0123456789abcdef"
STD_KEY = b"standard-webhooks-key-0123456789"
STD_SECRET = "whsec_" + base64.b64encode(STD_KEY).decode()
ED_KEY = SigningKey(b"\x07" * 32)
ED_PUBLIC = "whpk_" + base64.b64encode(bytes(ED_KEY.verify_key)).decode()


@pytest.fixture
async def hooked(start_node: StartNode) -> RunningNode:
    return await start_node(
        **{
            "security.webhook_secret": SIG_SECRET,
            "security.github_webhook_secret": GITHUB_SECRET,
            "security.standard_webhook_secret": STD_SECRET,
            "security.webhook_public_keys": [ED_PUBLIC],
        }
    )


def x_signature(body: bytes, t: int | None = None, secret: str = SIG_SECRET) -> dict[str, str]:
    t = int(time.time()) if t is None else t
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"t={t},v1={digest}"}


def github(body: bytes, delivery: str | None = None) -> dict[str, str]:
    digest = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Delivery": delivery or str(uuid.uuid4())}


def standard(body: bytes, *, ed25519: bool = False, msg_id: str | None = None) -> dict[str, str]:
    msg_id, t = msg_id or f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    signed = f"{msg_id}.{t}.".encode() + body
    if ed25519:
        sig = "v1a," + base64.b64encode(ED_KEY.sign(signed).signature).decode()
    else:
        sig = "v1," + base64.b64encode(hmac.new(STD_KEY, signed, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": t, "webhook-signature": sig}


def payload(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


async def post(node: RunningNode, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=node.url) as http:
        return await http.post(
            "/webhook", content=body, headers={"Content-Type": "application/json", **headers}
        )


async def test_each_scheme_accepts_a_correct_signature(hooked: RunningNode) -> None:
    body = payload(event="ping")
    for headers in (x_signature(body), github(body), standard(body), standard(body, ed25519=True)):
        response = await post(hooked, body, headers)
        assert response.status_code == 200, (headers, response.text)
        assert response.json()["applied"] is False  # a ping is not a task event


async def test_signatures_are_over_the_raw_body_not_reserialised_json(hooked: RunningNode) -> None:
    body = b'{ "event" :  "ping",\n  "b": [1, 2.50] }'
    assert (await post(hooked, body, x_signature(body))).status_code == 200
    reformatted = json.dumps(json.loads(body)).encode()
    assert (await post(hooked, reformatted, x_signature(body))).status_code == 401


async def test_replays_are_refused_for_every_scheme(hooked: RunningNode) -> None:
    body = payload(event="ping")
    for headers in (x_signature(body), github(body), standard(body), standard(body, ed25519=True)):
        assert (await post(hooked, body, headers)).status_code == 200
        replay = await post(hooked, body, headers)
        assert replay.status_code == 409, headers
    # GitHub: the same delivery id with another body is still a replay.
    delivery, first = str(uuid.uuid4()), payload(event="ping", n=1)
    assert (await post(hooked, first, github(first, delivery))).status_code == 200
    other = payload(event="ping", n=2)
    assert (await post(hooked, other, github(other, delivery))).status_code == 409


async def test_wrong_secret_and_stale_timestamp_are_401(hooked: RunningNode) -> None:
    body = payload(event="ping")
    wrong = await post(hooked, body, x_signature(body, secret="another-secret-0123456789"))
    assert wrong.status_code == 401
    assert "www-authenticate" in wrong.headers
    stale = await post(hooked, body, x_signature(body, t=int(time.time()) - 301))
    assert stale.status_code == 401
    future = await post(hooked, body, x_signature(body, t=int(time.time()) + 305))
    assert future.status_code == 401
    assert (await post(hooked, body, {})).status_code == 401


BAD_HEADERS: list[dict[str, str]] = [
    {"X-Signature": ""},
    {"X-Signature": "t=abc,v1=" + "0" * 64},
    {"X-Signature": "t=-5,v1=" + "0" * 64},
    {"X-Signature": f"t={int(time.time())}"},
    {"X-Signature": f"t={int(time.time())},v1=zz"},
    {"X-Signature": f"t={int(time.time())},t=1,v1=" + "0" * 64},
    {"X-Signature": "garbage"},
    {"X-Signature": "v0=" + "a" * 64},
    {"X-Hub-Signature-256": "sha1=" + "0" * 64, "X-GitHub-Delivery": "d1"},
    {"X-Hub-Signature-256": "sha256=nothex", "X-GitHub-Delivery": "d1"},
    {"X-Hub-Signature-256": "sha256=" + "0" * 64},
    {"X-Hub-Signature-256": "sha256=" + "0" * 64, "X-GitHub-Delivery": "bad delivery id!"},
    {"webhook-id": "m1", "webhook-timestamp": "soon", "webhook-signature": "v1,AAAA"},
    {"webhook-id": "m1", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,@@@"},
    {"webhook-id": "m1", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,AAAA"},
    {"webhook-id": "m1", "webhook-timestamp": str(int(time.time())), "webhook-signature": "nocomma"},
    {"webhook-id": "", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,AAAA"},
    {"webhook-id": "m1", "webhook-signature": "v2,AAAA"},
]


@pytest.mark.parametrize("headers", BAD_HEADERS)
async def test_malformed_signature_headers_are_4xx_never_5xx(
    hooked: RunningNode, headers: dict[str, str]
) -> None:
    response = await post(hooked, payload(event="ping"), headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_verified_body_that_is_not_json_is_a_4xx(hooked: RunningNode) -> None:
    for body in (b"not json", b"[1, 2]", b""):
        response = await post(hooked, body, x_signature(body))
        assert response.status_code in (400, 422), body


async def _dispatch_and_claim(node: RunningNode, core: str) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=node.url) as http:
        dispatched = await http.post(
            "/dispatch", json={"core_id": core}, headers=await auth_headers(node, "operator")
        )
        assert dispatched.status_code in (200, 201, 202), dispatched.text
        claimed = await http.post(
            f"/cores/{core}/claim", json={"wait": 5}, headers=await auth_headers(node, "system")
        )
        assert claimed.status_code == 200, claimed.text
    data = claimed.json()
    return str(data["task"]["task_id"]), str(data["lease_token"])


async def _task_status(node: RunningNode, task_id: str) -> str:
    async with httpx.AsyncClient(base_url=node.url, headers=await auth_headers(node, "viewer")) as http:
        return str((await http.get(f"/tasks/{task_id}")).json()["status"])


async def test_task_completed_with_the_lease_token_marks_the_task_succeeded(hooked: RunningNode) -> None:
    task_id, lease = await _dispatch_and_claim(hooked, "HOOK_CORE")
    body = payload(event="task.completed", task_id=task_id, lease_token=lease, data={"rows": 3})
    response = await post(hooked, body, standard(body))
    assert response.status_code == 200, response.text
    assert response.json()["applied"] is True and response.json()["status"] == "succeeded"
    assert await _task_status(hooked, task_id) == "succeeded"


async def test_status_field_and_lease_in_data_are_understood(hooked: RunningNode) -> None:
    task_id, lease = await _dispatch_and_claim(hooked, "HOOK_CORE2")
    body = payload(task_id=task_id, status="failed", data={"lease_token": lease, "error": "disk full"})
    response = await post(hooked, body, x_signature(body))
    assert response.status_code == 200, response.text
    assert await _task_status(hooked, task_id) in ("failed", "retrying", "queued")


async def test_a_cancellation_needs_no_lease_token(hooked: RunningNode) -> None:
    async with httpx.AsyncClient(base_url=hooked.url) as http:
        dispatched = await http.post(
            "/dispatch", json={"core_id": "HOOK_CORE3"}, headers=await auth_headers(hooked, "operator")
        )
    task_id = dispatched.json()["task_id"]
    body = payload(event="task.cancelled", task_id=task_id)
    response = await post(hooked, body, github(body))
    assert response.status_code == 200, response.text
    assert await _task_status(hooked, task_id) == "cancelled"


async def test_task_events_without_a_task_are_422_and_unknown_tasks_404(hooked: RunningNode) -> None:
    no_lease = payload(event="task.completed", task_id="t-1")  # lease-free: applied if the task exists
    assert (await post(hooked, no_lease, x_signature(no_lease))).status_code == 404
    no_task = payload(event="task.completed", lease_token="abc")
    response = await post(hooked, no_task, x_signature(no_task))
    assert response.status_code == 422 and response.json()["field"] == "task_id"
    bad_status = payload(task_id="t-1", status="exploded")
    assert (await post(hooked, bad_status, x_signature(bad_status))).status_code == 422
    unknown = payload(event="task.cancelled", task_id="no-such-task")
    assert (await post(hooked, unknown, x_signature(unknown))).status_code == 404


async def test_stale_lease_token_is_a_409(hooked: RunningNode) -> None:
    task_id, _ = await _dispatch_and_claim(hooked, "HOOK_CORE4")
    body = payload(event="task.completed", task_id=task_id, lease_token="not-the-lease")
    assert (await post(hooked, body, x_signature(body))).status_code == 409


async def test_unconfigured_schemes_are_refused(start_node: StartNode) -> None:
    bare = await start_node()
    body = payload(event="ping")
    assert (await post(bare, body, x_signature(body))).status_code == 401
    assert (await post(bare, body, standard(body))).status_code == 401
