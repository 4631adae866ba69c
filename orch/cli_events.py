"""`orch events`: print the node's events, or follow them live (`--follow`), over `GET /sse/events`.

    orch events                                  every stored event, then exit
    orch events --follow --type task. --core WORK_AI_01
    orch events --task 3f2c... --after 1200 --json

Without `--follow` it prints the stored events after `--after` (default: all) and exits once caught up.
With it, it prints from `--after` (default: from now) and keeps following, reconnecting with Last-Event-ID
after network errors, lagged cut-offs or a node restart, so no event is skipped or printed twice.
`follow_task` is the helper `orch dispatch --stay` uses to wait for a task's end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

import trio

from orch.cli import EXIT_FAILURE, CliError
from orch.feeds.client import FeedError, FeedEvent, follow_events, follow_task
from orch.feeds.filters import EventFilter
from orch.http.problems import ValidationFailed

__all__ = ["DEFAULT_URL", "follow_task", "format_event", "register"]

DEFAULT_URL = "http://127.0.0.1:8080"
_NON_FOLLOW_ATTEMPTS = 3


def _seq(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be an event seq (an integer >= 0), got {text!r}")
    return int(text)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `events` to the `orch` parser."""
    events = sub.add_parser("events", help="print the node's events, or follow them live (--follow)")
    events.add_argument("--follow", "-f", action="store_true", help="keep following live events")
    events.add_argument("--type", action="append", help="event-type prefix, e.g. task. (repeatable)")
    events.add_argument("--topic", action="append", help="topic, e.g. task or lock (repeatable)")
    events.add_argument("--task", help="only events of this task id")
    events.add_argument("--core", help="only events of this core")
    events.add_argument("--after", type=_seq, help="start after this seq (default: all, or now with -f)")
    events.add_argument("--json", action="store_true", help="print each event as one JSON line")
    events.add_argument("--url", help=f"node URL (default: $ORCH_URL or {DEFAULT_URL})")
    events.add_argument("--token", help="bearer token (default: $ORCH_TOKEN)")
    events.set_defaults(handler=_cmd_events)


def format_event(event: FeedEvent) -> str:
    """One human-readable line: seq, time, type, subject, core, data."""
    ts = event.raw.get("ts")
    when = (
        datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
        if isinstance(ts, int | float)
        else "-"
    )
    core = event.raw.get("core_id") or "-"
    data = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"{event.seq:>8}  {when}  {event.type:<22} {event.subject or '-'}  {core}  {data}"


def _cmd_events(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("ORCH_URL") or DEFAULT_URL
    token = args.token or os.environ.get("ORCH_TOKEN") or None
    try:
        query = EventFilter.parse(
            types=args.type, topics=args.topic, task_id=args.task, core_id=args.core
        ).to_query()
    except ValidationFailed as exc:
        raise CliError(f"--{exc.field.replace('_id', '')}: {exc.problem}") from None
    after = args.after if args.after is not None or args.follow else 0
    out = sys.stdout

    async def show(event: FeedEvent) -> bool:
        line = json.dumps(dict(event.raw), ensure_ascii=False) if args.json else format_event(event)
        _print(out, line)
        return False

    def note(text: str) -> None:
        print(f"orch: {text}", file=sys.stderr, flush=True)

    async def run() -> None:
        await follow_events(
            url,
            token,
            query,
            after=after,
            follow=args.follow,
            on_event=show,
            on_note=note,
            max_attempts=None if args.follow else _NON_FOLLOW_ATTEMPTS,
        )

    try:
        trio.run(run)
    except FeedError as exc:
        raise CliError(f"the node refused the event stream ({exc})", EXIT_FAILURE) from None
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `orch events | head`
        return 0
    return 0


def _print(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()
