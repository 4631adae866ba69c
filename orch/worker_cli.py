"""`orch worker` on the command line: arguments, signals, exit status (the loop is `orch.worker.Worker`)."""

from __future__ import annotations

import argparse
import logging
import signal

import trio

from orch.cli import CliError
from orch.cli_client import add_node_args, node_token, node_url
from orch.logs import configure_logging
from orch.worker import Worker, WorkerRefused, WorkerSettings, default_worker_id

__all__ = ["register", "settings_from_args"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `worker`."""
    p = sub.add_parser(
        "worker",
        help="claim and run tasks of a core: orch worker --core C -- COMMAND...",
        description="Run COMMAND for each task of the core; the task is in ORCH_* env vars and on stdin.",
    )
    p.add_argument("--core", required=True, help="core id to work for, e.g. WORK_AI_01")
    p.add_argument("--id", dest="worker_id", help="worker id (default: <hostname>-<pid>)")
    p.add_argument("--lease", type=float, default=30.0, help="lease seconds per claim (default 30)")
    p.add_argument("--heartbeat", type=float, help="seconds between heartbeats (default lease/3, max 10)")
    p.add_argument("--wait", type=float, default=30.0, help="long-poll seconds per claim (max 60)")
    p.add_argument("--max-tasks", type=int, help="exit after this many tasks")
    p.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="commands run at once (default 1); free slots are filled by one claim for several tasks",
    )
    p.add_argument("--grace", type=float, default=30.0, help="on SIGTERM, let a command finish this long")
    p.add_argument("--tail-bytes", type=int, default=4096, help="output kept per stream for the report")
    p.add_argument("--quiet", action="store_true", help="do not echo the command's output")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO (default), WARNING, ERROR")
    add_node_args(p)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    p.set_defaults(handler=_cmd_worker)


def settings_from_args(args: argparse.Namespace) -> WorkerSettings:
    """Validated settings (usage errors raise CliError, exit 2)."""
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CliError("worker needs a command: orch worker --core C -- COMMAND [ARG...]")
    if not 0 < args.lease <= 86_400:
        raise CliError("--lease must be within (0, 86400] seconds")
    if not 0 <= args.wait <= 60:
        raise CliError("--wait must be within [0, 60] seconds")
    if args.heartbeat is not None and not 0 < args.heartbeat < args.lease:
        raise CliError("--heartbeat must be positive and shorter than --lease")
    if args.max_tasks is not None and args.max_tasks < 1:
        raise CliError("--max-tasks must be at least 1")
    if not 1 <= args.concurrency <= 1000:
        raise CliError("--concurrency must be within [1, 1000]")
    return WorkerSettings(
        url=node_url(args),
        core=args.core,
        command=tuple(command),
        token=node_token(args),
        worker_id=args.worker_id or default_worker_id(),
        lease=args.lease,
        heartbeat=args.heartbeat,
        claim_wait=args.wait,
        max_tasks=args.max_tasks,
        concurrency=args.concurrency,
        grace=max(0.0, args.grace),
        tail_bytes=max(0, args.tail_bytes),
        echo=not args.quiet,
    )


def _cmd_worker(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(args.log_level.upper())
    worker = Worker(settings)

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:

                async def watch() -> None:
                    async for _ in signals:
                        worker.stop()

                nursery.start_soon(watch)
                await worker.run()
                nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except WorkerRefused as exc:
        raise CliError(f"the node refused this worker: {exc}") from None
    except BaseExceptionGroup as group:
        refused = group.subgroup(WorkerRefused)
        if refused is None:
            raise
        raise CliError(f"the node refused this worker: {refused.exceptions[0]}") from None
    logging.getLogger("orch.worker").info("outcomes: %s", worker.completed)
    return 0
