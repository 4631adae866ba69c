"""The same-run baseline: a hello-world Quart-Trio app on Hypercorn's trio worker (the stack's ceiling).

    python -m bench.harness.baseline_app [--host 127.0.0.1] [--port 0]

Prints `baseline: ready on http://HOST:PORT` once it accepts connections; stops on SIGTERM or SIGINT.
It answers `GET /health` with a small JSON body and `POST /echo` with the size of what it read, so GET
and POST scenarios each have a like-for-like reference.
"""

from __future__ import annotations

import argparse
import json
import signal

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

READY_PREFIX = "baseline: ready on "

app = QuartTrio("baseline", static_folder=None)


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
    """The same Hypercorn settings the node uses (no access log, no server header)."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.include_server_header = False
    config.graceful_timeout = 1.0
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
