"""Local receivers for the notifier (HTTP and SMTP, 127.0.0.1 only), an independent Standard Webhooks
verifier, and polling helpers for the monitor's end-to-end tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import trio
import yaml

from orch.server import RunningNode

from .auth_helpers import auth_headers

T = TypeVar("T")


async def until(check: Callable[[], Awaitable[T | None]], *, limit: float = 20.0, every: float = 0.2) -> T:
    """Poll ``check()`` until it returns something truthy; fails after ``limit`` seconds."""
    with trio.fail_after(limit):
        while True:
            result = await check()
            if result:
                return result
            await trio.sleep(every)


async def client(node: RunningNode, role: str = "admin") -> httpx.AsyncClient:
    """An httpx client for ``node`` logged in as ``role``."""
    return httpx.AsyncClient(base_url=node.url, headers=await auth_headers(node, role))


def rules_file(tmp_path: Path, data: dict[str, Any]) -> Path:
    """Write a monitor rules file (``monitoring.rules_file``)."""
    path = tmp_path / "monitor-rules.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------- Standard Webhooks
def verify_standard_webhook(
    secret: str, headers: dict[str, str], body: bytes, *, tolerance: float = 300
) -> bool:
    """Written from the spec (standardwebhooks.com), independently of orch's signer: HMAC-SHA256 over
    ``{webhook-id}.{webhook-timestamp}.{body}`` keyed with the base64-decoded ``whsec_`` secret; any of the
    space-separated ``v1,<base64>`` signatures may match; the timestamp must be recent."""
    msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(stamp)) > tolerance:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = msg_id.encode() + b"." + stamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    for entry in headers["webhook-signature"].split(" "):
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


# ------------------------------------------------------------------------------------------ receivers
@dataclass
class Received:
    """What a local receiver got."""

    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    mails: list[bytes] = field(default_factory=list)

    def json_bodies(self) -> list[dict[str, Any]]:
        """Every HTTP body, parsed."""
        return [json.loads(body) for _, body in self.requests]


async def _read_until(stream: trio.SocketStream, buf: bytearray, marker: bytes) -> bytes:
    while marker not in buf:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise EOFError
        buf += chunk
    head, _, rest = bytes(buf).partition(marker)
    buf[:] = rest
    return head


async def http_receiver(nursery: trio.Nursery, received: Received) -> str:
    """A minimal HTTP/1.1 server answering 200 "ok" to every POST; returns its URL."""

    async def serve(stream: trio.SocketStream) -> None:
        buf = bytearray()
        with trio.move_on_after(10):
            async with stream:
                while True:
                    try:
                        head = await _read_until(stream, buf, b"\r\n\r\n")
                    except EOFError:
                        return
                    lines = head.decode("latin-1").split("\r\n")
                    headers = {
                        k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
                    }
                    length = int(headers.get("content-length", "0"))
                    while len(buf) < length:
                        buf += await stream.receive_some(65536)
                    body, buf[:] = bytes(buf[:length]), buf[length:]
                    received.requests.append((headers, body))
                    await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


async def smtp_receiver(nursery: trio.Nursery, received: Received) -> int:
    """A minimal SMTP server (no TLS, no auth) storing each DATA payload; returns its port."""

    async def serve(stream: trio.SocketStream) -> None:
        buf = bytearray()
        with trio.move_on_after(10):
            async with stream:
                await stream.send_all(b"220 localhost test SMTP\r\n")
                while True:
                    try:
                        line = (await _read_until(stream, buf, b"\r\n")).decode("latin-1")
                    except EOFError:
                        return
                    verb = line.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        await stream.send_all(b"250-localhost\r\n250 8BITMIME\r\n")
                    elif verb == "DATA":
                        await stream.send_all(b"354 go ahead\r\n")
                        received.mails.append(await _read_until(stream, buf, b"\r\n.\r\n"))
                        await stream.send_all(b"250 queued\r\n")
                    elif verb == "QUIT":
                        await stream.send_all(b"221 bye\r\n")
                        return
                    else:  # MAIL, RCPT, RSET, NOOP
                        await stream.send_all(b"250 OK\r\n")

    listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
    port: int = listeners[0].socket.getsockname()[1]
    return port
