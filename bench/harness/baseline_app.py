"""The same-run baseline: a hello-world Quart-Trio app on Hypercorn's trio worker (the stack's ceiling).

    python -m bench.harness.baseline_app [--host 127.0.0.1] [--port 0]

Prints `baseline: ready on http://HOST:PORT` once it accepts connections; stops on SIGTERM or SIGINT.
It answers `GET /health` with a small JSON body and `POST /echo` with the size of what it read, so GET
and POST scenarios each have a like-for-like reference. For fan-out it is the simplest broadcaster the
stack allows: `POST /publish {"count": n}` sends n events (`seq`, `ts`) to every subscriber of
`GET /sse/events` (coalesced: one write carries whatever queued up) and `WS /ws/events` (one JSON
array per batch); `GET /subscribers` counts them and gives the last seq. A subscriber that falls
10,000 events behind is cut.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from collections.abc import AsyncIterator
from typing import TypeVar

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request, websocket
from quart_trio import QuartTrio

READY_PREFIX = "baseline: ready on "
BUFFER = 10_000
T = TypeVar("T")

app = QuartTrio("baseline", static_folder=None)
app.config["RESPONSE_TIMEOUT"] = None  # SSE streams live as long as the subscriber


class Hub:
    """Fan-out to subscriber channels; a full channel is closed (the subscriber lagged)."""

    def __init__(self) -> None:
        self.seq = 0
        self.sse: set[trio.MemorySendChannel[bytes]] = set()
        self.ws: set[trio.MemorySendChannel[dict[str, object]]] = set()

    def publish(self, count: int) -> tuple[int, int]:
        """Send `count` events to everyone; the first and last seq."""
        first = self.seq + 1
        for _ in range(count):
            self.seq += 1
            event = {"seq": self.seq, "type": "bench.tick", "ts": time.time()}
            frame = f"id: {self.seq}\nevent: bench.tick\ndata: {json.dumps(event)}\n\n".encode()
            for channel in list(self.sse):
                self._offer(self.sse, channel, frame)
            for wchannel in list(self.ws):
                self._offer(self.ws, wchannel, event)
        return first, self.seq

    @staticmethod
    def _offer(group: set[trio.MemorySendChannel[T]], channel: trio.MemorySendChannel[T], item: T) -> None:
        try:
            channel.send_nowait(item)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            group.discard(channel)
            channel.close()


hub = Hub()


async def _drain(receive: trio.MemoryReceiveChannel[bytes]) -> AsyncIterator[bytes]:
    async for first in receive:
        batch = [first]
        while True:
            try:
                batch.append(receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        yield b"".join(batch)


@app.get("/sse/events")
async def sse_events() -> Response:
    """The event stream (text/event-stream), coalesced writes."""
    send, receive = trio.open_memory_channel[bytes](BUFFER)
    hub.sse.add(send)

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b": subscribed\n\n"
            async for chunk in _drain(receive):
                yield chunk
        finally:
            hub.sse.discard(send)

    return Response(body(), content_type="text/event-stream", headers={"Cache-Control": "no-store"})


@app.websocket("/ws/events")
async def ws_events() -> None:
    """The same feed over a websocket: one JSON array per batch."""
    send, receive = trio.open_memory_channel[dict[str, object]](BUFFER)
    await websocket.accept()
    hub.ws.add(send)
    try:
        await websocket.send(json.dumps({"type": "subscribed"}))
        async for first in receive:
            batch = [first]
            while True:
                try:
                    batch.append(receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            await websocket.send(json.dumps(batch))
    finally:
        hub.ws.discard(send)


@app.post("/publish")
async def publish() -> Response:
    """Publish `count` events (default 1); answers the seq range."""
    body = await request.get_json(silent=True) or {}
    first, last = hub.publish(int(body.get("count", 1)))
    return Response(json.dumps({"first": first, "last": last}), status=201, content_type="application/json")


@app.get("/subscribers")
async def subscribers() -> Response:
    """How many SSE and websocket subscribers are registered, and the last published seq."""
    body = {"sse": len(hub.sse), "ws": len(hub.ws), "seq": hub.seq}
    return Response(json.dumps(body), content_type="application/json")


@app.get("/health")
async def health() -> Response:
    """A fixed JSON body, about the size of a small API answer."""
    return Response('{"status":"healthy"}', content_type="application/json")


@app.post("/echo")
async def echo() -> Response:
    """Read the body, answer with its size (the JSON parse of a small POST is part of the cost)."""
    body = await request.get_data()
    return Response(json.dumps({"received": len(body)}), status=201, content_type="application/json")


def hypercorn_config(host: str, port: int) -> Config:
    """The same Hypercorn settings the node uses (no access log, no server header, listen backlog)."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.include_server_header = False
    config.graceful_timeout = 1.0
    config.backlog = 4096  # as the node (server.backlog): fan-out runs open thousands of connections at once
    return config


async def main(host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT."""
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            lambda task_status: serve(
                app,
                hypercorn_config(host, port),
                shutdown_trigger=stop.wait,
                task_status=task_status,
            )
        )
        print(f"{READY_PREFIX}{binds[0]}", flush=True)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                stop.set()
                break


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    trio.run(main, args.host, args.port)
