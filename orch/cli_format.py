"""Plain-text rendering for the CLI: aligned tables, one-line tasks, the supervision tree."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

__all__ = ["print_table", "supervisor_lines", "task_line", "uptime_text"]


def print_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Print left-aligned columns (two spaces apart); `(none)` for no rows."""
    rows = [tuple(r) for r in rows]
    if not rows:
        print("(none)")
        return
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in (tuple(header), *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def task_line(task: dict[str, Any]) -> str:
    """`<status> <id> core=... priority=...` plus what matters for that status."""
    parts = [task["status"], task["task_id"], f"core={task['core_id']}", f"priority={task['priority']}"]
    if task.get("queue_position") is not None and task["status"] == "queued":
        parts.append(f"position={task['queue_position']}")
    if task.get("estimated_start") and task["status"] == "queued":
        parts.append(f"eta={task['estimated_start']}")
    if task.get("attempts"):
        parts.append(f"attempt={task['attempts']}/{task['max_attempts']}")
    if task.get("claimed_by") and task["status"] in ("claimed", "running"):
        parts.append(f"worker={task['claimed_by']}")
    if task.get("cancel_requested") and task["status"] in ("claimed", "running"):
        parts.append("cancel-requested")
    if task.get("error"):
        parts.append(f"error={_short(task['error'], 200)}")
    if task.get("result"):
        parts.append(f"result={_short(task['result'])}")
    return " ".join(parts)


def uptime_text(started_at: str | None) -> str:
    """`3h12m` since an ISO timestamp ('-' when unknown)."""
    if not started_at:
        return "-"
    seconds = max(0, int(time.time() - datetime.fromisoformat(started_at).timestamp()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _child_text(child: dict[str, Any]) -> str:
    parts = [child["id"], child["state"], f"restarts={child['restarts']}"]
    if child.get("supervisor") is None:
        mailbox = child.get("mailbox") or {}
        parts.append(f"mailbox={mailbox.get('depth')}/{mailbox.get('capacity')}")
        parts.append(f"handled={child.get('messages_handled')}")
    parts.append(f"up={uptime_text(child.get('started_at'))}")
    failure = child.get("last_failure")
    if failure:
        parts.append(f"last-failure={failure['type']}@{failure['at'][11:19]}: {failure['message'][:80]}")
    return "  ".join(parts)


def supervisor_lines(tree: dict[str, Any], prefix: str = "") -> list[str]:
    """The tree as lines with box-drawing branches; nested supervisors are indented under their entry."""
    lines = [f"{tree['id']} ({tree['strategy']}, {tree['state']})"] if not prefix else []
    children = tree.get("children", [])
    for index, child in enumerate(children):
        last = index == len(children) - 1
        lines.append(f"{prefix}{'└── ' if last else '├── '}{_child_text(child)}")
        nested = child.get("supervisor")
        if nested is not None:
            lines.extend(supervisor_lines(nested, prefix + ("    " if last else "│   ")))
    return lines
