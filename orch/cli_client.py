"""The CLI's HTTP side: which node, which token, and one clear line (and exit status) per failure.

`--url` defaults to $ORCH_URL or http://127.0.0.1:8080; `--token` to $ORCH_TOKEN. A refusal (4xx) exits 2
with the problem's detail; an unreachable node or a server error exits 4 (`EXIT_UNAVAILABLE`).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import httpx

from orch.cli import CliError

__all__ = [
    "DEFAULT_URL",
    "EXIT_UNAVAILABLE",
    "NodeClient",
    "add_node_args",
    "client_from_args",
    "problem_text",
]

DEFAULT_URL = "http://127.0.0.1:8080"
EXIT_UNAVAILABLE = 4


def add_node_args(parser: argparse.ArgumentParser) -> None:
    """`--url` and `--token` (defaults from the environment)."""
    parser.add_argument("--url", help=f"node URL (default: $ORCH_URL or {DEFAULT_URL})")
    parser.add_argument("--token", help="bearer token (default: $ORCH_TOKEN)")


def node_url(args: argparse.Namespace) -> str:
    """The node URL from `--url`, $ORCH_URL or the default."""
    return str(getattr(args, "url", None) or os.environ.get("ORCH_URL") or DEFAULT_URL).rstrip("/")


def node_token(args: argparse.Namespace) -> str | None:
    """The bearer token from `--token` or $ORCH_TOKEN (None: anonymous)."""
    return getattr(args, "token", None) or os.environ.get("ORCH_TOKEN") or None


def auth_headers(token: str | None) -> dict[str, str]:
    """The Authorization header for `token` (empty without one)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def problem_text(response: httpx.Response) -> str:
    """`<status> <title>: <detail>` from a problem+json answer (or the start of any other body)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        title = body.get("title") or response.reason_phrase
        return f"{response.status_code} {title}: {body['detail']}"
    text = response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason_phrase
    return f"{response.status_code} {text}"


class NodeClient:
    """A synchronous client of one node for the one-shot commands."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 30.0) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, headers=auth_headers(token), timeout=timeout)

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
        ok: tuple[int, ...] = (200, 201, 202, 204),
    ) -> httpx.Response:
        """Send one request; a status outside `ok` or a transport failure raises `CliError`."""
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = self._http.request(method, path, json=json, params=params, **extra)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise CliError(f"cannot reach the node at {self.url}: {reason}", EXIT_UNAVAILABLE) from None
        if response.status_code not in ok:
            code = 2 if 400 <= response.status_code < 500 else EXIT_UNAVAILABLE
            raise CliError(problem_text(response), code)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """`call(...)` and decode its JSON body."""
        return self.call(method, path, **kwargs).json()


def client_from_args(args: argparse.Namespace, *, timeout: float = 30.0) -> NodeClient:
    """A client for the node named by `--url`/`--token` (or their environment defaults)."""
    return NodeClient(node_url(args), node_token(args), timeout=timeout)
