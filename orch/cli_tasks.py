"""Task subcommands of `orch`, talking to a running node over HTTP.

    orch dispatch --core WORK_AI_01 [--priority N] [--meta k=v]... [--stay [--wait-timeout S]] [--json|-q]
    orch tasks [TASK_ID] [--status queued,running] [--core C] [--limit N] [--all] [--json]
    orch cancel TASK_ID [--reason TEXT]        orch requeue TASK_ID
    orch locks [--owner O] [--prefix P] [--json]
    orch status [--json]                       (the supervision tree, for operators)
    orch worker --core WORK_AI_01 [options] -- COMMAND...   (see orch.worker)

`orch dispatch --stay` follows the task until it ends, surviving node restarts (it re-attaches with the
same idempotency key), and exits with the task's outcome:

    0 succeeded      1 failed for good (dead: attempts used up, or timed out)      2 usage / request refused
    3 cancelled      4 node unreachable or server error      5 --wait-timeout passed before the end
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import trio

from orch.cli import CliError
from orch.cli_client import (
    EXIT_UNAVAILABLE,
    NodeClient,
    add_node_args,
    client_from_args,
    node_token,
    node_url,
)
from orch.cli_format import print_table, supervisor_lines, task_line

__all__ = ["EXIT_CODES", "EXIT_STILL_RUNNING", "exit_code_for", "follow_by_stay", "register"]

EXIT_CODES = {"succeeded": 0, "dead": 1, "failed": 1, "timed_out": 1, "cancelled": 3}
EXIT_STILL_RUNNING = 5
MAX_STAY = 3600.0  # the node's bound on one stay request


def exit_code_for(status: str) -> int:
    """The exit status of `orch dispatch --stay` for a task's final status."""
    return EXIT_CODES.get(status, 1)


def _meta(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `dispatch`, `tasks`, `cancel`, `requeue`, `locks`, `status` and `worker`."""
    p = sub.add_parser("dispatch", help="queue a task for a core (--stay: wait for its outcome)")
    p.add_argument("--core", required=True, help="core id, e.g. WORK_AI_01")
    p.add_argument("--priority", type=int, default=0, help="-100..100, higher first (default 0)")
    p.add_argument("--meta", type=_meta, action="append", default=[], metavar="KEY=VALUE", help="metadata")
    p.add_argument("--timeout", type=float, help="seconds one attempt may run")
    p.add_argument("--max-attempts", type=int, help="attempts before the task is dead (default 3)")
    p.add_argument("--delay", type=float, help="do not start before this many seconds from now")
    p.add_argument("--idempotency-key", help="repeat-safe key (default: random with --stay)")
    p.add_argument("--stay", action="store_true", help="wait for the task to end; exit with its outcome")
    p.add_argument("--wait-timeout", type=float, help="with --stay: give up after this many seconds (exit 5)")
    _add_output(p)
    add_node_args(p)
    p.set_defaults(handler=_cmd_dispatch)

    p = sub.add_parser("tasks", help="list tasks (or show one)")
    p.add_argument("task_id", nargs="?", help="show this task")
    p.add_argument("--status", help="comma-separated statuses, e.g. queued,running")
    p.add_argument("--core", help="only this core")
    p.add_argument("--limit", type=int, default=50, help="rows per page (default 50)")
    p.add_argument("--all", action="store_true", help="follow every page")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    add_node_args(p)
    p.set_defaults(handler=_cmd_tasks)

    for name, text in (("cancel", "cancel a task"), ("requeue", "put a dead task back in the queue")):
        p = sub.add_parser(name, help=text)
        p.add_argument("task_id")
        if name == "cancel":
            p.add_argument("--reason", help="recorded in the task's events")
        _add_output(p)
        add_node_args(p)
        p.set_defaults(handler=_cmd_cancel if name == "cancel" else _cmd_requeue)

    p = sub.add_parser("locks", help="list held locks")
    p.add_argument("--owner", help="only locks of this owner")
    p.add_argument("--prefix", help="only resources starting with this")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    add_node_args(p)
    p.set_defaults(handler=_cmd_locks)

    p = sub.add_parser("status", help="the supervision tree and queues of a running node")
    p.add_argument("--json", action="store_true", help="the raw JSON")
    add_node_args(p)
    p.set_defaults(handler=_cmd_status)

    from orch import worker_cli

    worker_cli.register(sub)


def _add_output(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="print the task as JSON")
    group.add_argument("--quiet", "-q", action="store_true", help="print only the task id")


def _print_task(task: dict[str, Any], args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(task, indent=2, sort_keys=True))
    elif args.quiet:
        print(task["task_id"])
    else:
        print(task_line(task))


# ------------------------------------------------------------------------------------------- dispatch
def _dispatch_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"core_id": args.core, "priority": args.priority}
    if args.meta:
        body["metadata"] = dict(args.meta)
    optional = {"timeout": args.timeout, "max_attempts": args.max_attempts, "delay": args.delay}
    body.update({k: v for k, v in optional.items() if v is not None})
    key = args.idempotency_key or (str(uuid.uuid4()) if args.stay else None)
    if key is not None:
        body["idempotency_key"] = key
    return body


def _cmd_dispatch(args: argparse.Namespace) -> int:
    body = _dispatch_body(args)
    with client_from_args(args) as client:
        task = client.json("POST", "/dispatch", json=body)
        if not args.stay:
            _print_task(task, args)
            return 0
        chatty = not args.quiet and not args.json
        if chatty:
            print(f"queued {task['task_id']} on {task['core_id']}; following it", file=sys.stderr)
        deadline = None if args.wait_timeout is None else time.monotonic() + args.wait_timeout
        if not task["finished"]:
            task = _follow(args, client, body, task["task_id"], deadline, chatty=chatty)
    _print_task(task, args)
    if not task["finished"]:
        print(f"orch: still {task['status']} after --wait-timeout", file=sys.stderr)
        return EXIT_STILL_RUNNING
    return exit_code_for(task["status"])


def _follow(
    args: argparse.Namespace,
    client: NodeClient,
    body: dict[str, Any],
    task_id: str,
    deadline: float | None,
    *,
    chatty: bool,
) -> dict[str, Any]:
    """Follow the task's events live (printing them when `chatty`) until it ends, then read its final
    state. Callers that may not stream events (e.g. a system token) fall back to long-poll `stay`."""
    from orch.cli_events import follow_task, format_event
    from orch.feeds.client import FeedError

    async def show(event: Any) -> None:
        if chatty:
            print(format_event(event), file=sys.stderr, flush=True)

    async def follow() -> bool:
        limit = math.inf if deadline is None else max(0.0, deadline - time.monotonic())
        with trio.move_on_after(limit):
            await follow_task(node_url(args), node_token(args), task_id, on_event=show)
            return True
        return False

    try:
        ended = trio.run(follow)
    except FeedError as exc:
        if exc.status not in (401, 403, 404):
            raise CliError(f"following the task failed: {exc}", EXIT_UNAVAILABLE) from None
        ended = None  # not allowed to stream: long-poll instead
    if ended is False:  # --wait-timeout passed
        return dict(client.json("GET", f"/tasks/{task_id}"))
    # Re-attaching by idempotency key also rides out a node restart between the end and this read.
    return follow_by_stay(client, body, deadline)


def follow_by_stay(client: NodeClient, body: dict[str, Any], deadline: float | None) -> dict[str, Any]:
    """Re-attach to the task of `body`'s idempotency key with `stay` until it ends or `deadline` passes.

    Transport errors and 5xx (a restarting node) are retried with backoff; the task is never dispatched
    twice because the key matches it.
    """
    backoff = 0.5
    task: dict[str, Any] | None = None
    while True:
        remaining = MAX_STAY if deadline is None else deadline - time.monotonic()
        if remaining <= 0 and task is not None:
            return task
        wait = max(0.001, min(remaining, MAX_STAY))
        try:
            stay = {**body, "stay": True, "wait": wait}
            response = client.call("POST", "/dispatch", json=stay, timeout=wait + 30, ok=(200, 201))
        except CliError as exc:
            if exc.code != EXIT_UNAVAILABLE or (deadline is not None and time.monotonic() >= deadline):
                raise
            time.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
            continue
        backoff = 0.5
        task = dict(response.json())
        if task["finished"]:
            return task


# ------------------------------------------------------------------------------------------- listings
def _cmd_tasks(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        if args.task_id:
            task = client.json("GET", f"/tasks/{args.task_id}")
            print(json.dumps(task, indent=2, sort_keys=True) if args.json else task_line(task))
            return 0
        rows = _list_tasks(client, args)
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    header = ("TASK", "CORE", "STATUS", "PRIO", "TRIES", "CREATED", "WORKER")
    body = [
        (
            t["task_id"],
            t["core_id"],
            t["status"] + (" (cancel requested)" if t["cancel_requested"] else ""),
            str(t["priority"]),
            f"{t['attempts']}/{t['max_attempts']}",
            (t["created_at"] or "")[:19].replace("T", " "),
            t["claimed_by"] or "",
        )
        for t in rows
    ]
    print_table(header, body)
    return 0


def _list_tasks(client: NodeClient, args: argparse.Namespace) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"limit": max(1, min(args.limit, 1000))}
    if args.status:
        params["status"] = args.status
    if args.core:
        params["core_id"] = args.core
    rows: list[dict[str, Any]] = []
    while True:
        page = client.json("GET", "/tasks", params=params)
        rows.extend(page["tasks"])
        if not args.all or not page["next_cursor"]:
            return rows
        params["cursor"] = page["next_cursor"]


def _cmd_cancel(args: argparse.Namespace) -> int:
    body = {"reason": args.reason} if args.reason else None
    with client_from_args(args) as client:
        _print_task(client.json("POST", f"/tasks/{args.task_id}/cancel", json=body), args)
    return 0


def _cmd_requeue(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        _print_task(client.json("POST", f"/tasks/{args.task_id}/requeue"), args)
    return 0


def _cmd_locks(args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("owner", args.owner), ("prefix", args.prefix)) if v}
    with client_from_args(args) as client:
        locks = client.json("GET", "/locks", params=params)["locks"]
    if args.json:
        print(json.dumps(locks, indent=2, sort_keys=True))
        return 0
    rows: list[Sequence[str]] = []
    for lock in locks:
        for holder in lock["holders"]:
            rows.append(
                (
                    lock["resource"],
                    holder["owner"],
                    holder["mode"],
                    str(holder["fence"]),
                    f"{holder['remaining']:.1f}s",
                    str(lock["waiters"]),
                )
            )
    print_table(("RESOURCE", "OWNER", "MODE", "FENCE", "REMAINING", "WAITERS"), rows)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        tree = client.json("GET", "/supervisor")
        try:
            queues = client.json("GET", "/queues")["cores"]
        except CliError:
            queues = []  # a role that may see the tree but not the queues
    if args.json:
        print(json.dumps({"supervisor": tree, "queues": queues}, indent=2, sort_keys=True))
        return 0
    print("\n".join(supervisor_lines(tree)))
    if queues:
        print()
        rows = [
            (
                q["core_id"],
                str(q["queued"]),
                str(q["claimed"] + q["running"]),
                str(q["retrying"]),
                str(q["waiting_workers"]),
                "-" if q["oldest_queued_age_s"] is None else f"{q['oldest_queued_age_s']:.1f}s",
            )
            for q in queues
        ]
        print_table(("CORE", "QUEUED", "RUNNING", "RETRYING", "WORKERS", "OLDEST"), rows)
    return 0
