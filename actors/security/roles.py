"""Roles, actions, and THE authorisation table (role x action). Every endpoint asks `is_allowed`.

Human roles nest: admin ⊃ operator ⊃ viewer. `system` (workers, integrations) is a separate branch: it
can do the worker protocol and webhooks, and nothing a human role can do unless listed explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class Role(StrEnum):
    """Who a principal is, for authorisation purposes."""

    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"
    SYSTEM = "system"


class Action(StrEnum):
    """Everything an authenticated request can ask to do. One action per endpoint (or endpoint family)."""

    # observing
    TASK_READ = "task.read"
    EVENT_STREAM = "event.stream"
    LOCK_READ = "lock.read"
    ALERT_READ = "alert.read"
    METRICS_READ = "metrics.read"
    # operating
    TASK_DISPATCH = "task.dispatch"
    TASK_CANCEL = "task.cancel"
    TASK_RETRY = "task.retry"
    TASK_SET_STATUS = "task.set_status"
    LOCK_ACQUIRE = "lock.acquire"
    LOCK_RELEASE = "lock.release"
    ALERT_ACK = "alert.ack"
    SUPERVISOR_READ = "supervisor.read"
    # administering
    ACTOR_RESTART = "actor.restart"
    USER_READ = "user.read"
    USER_MANAGE = "user.manage"
    TOKEN_ISSUE_SYSTEM = "token.issue_system"
    TOKEN_REVOKE = "token.revoke"
    AUDIT_READ = "audit.read"
    SETTINGS_MANAGE = "settings.manage"  # runtime-changeable settings (rate limits)
    # the worker protocol and integrations
    WORKER_CLAIM = "worker.claim"
    WORKER_HEARTBEAT = "worker.heartbeat"
    WORKER_REPORT = "worker.report"
    WEBHOOK_RECEIVE = "webhook.receive"


_VIEWER = frozenset({Role.VIEWER, Role.OPERATOR, Role.ADMIN})
_OPERATOR = frozenset({Role.OPERATOR, Role.ADMIN})
_ADMIN = frozenset({Role.ADMIN})
_SYSTEM = frozenset({Role.SYSTEM})

_TABLE: dict[Action, frozenset[Role]] = {
    Action.TASK_READ: _VIEWER | _SYSTEM,  # a worker may read the task it was handed
    Action.EVENT_STREAM: _VIEWER,
    Action.LOCK_READ: _VIEWER | _SYSTEM,
    Action.ALERT_READ: _VIEWER,
    Action.METRICS_READ: _VIEWER | _SYSTEM,  # scrapers run as system principals
    Action.TASK_DISPATCH: _OPERATOR | _SYSTEM,  # integrations dispatch work
    Action.TASK_CANCEL: _OPERATOR,
    Action.TASK_RETRY: _OPERATOR,
    Action.TASK_SET_STATUS: _OPERATOR | _SYSTEM,  # the seed's PUT /jobs/{id}/status is used by workers
    Action.LOCK_ACQUIRE: _OPERATOR | _SYSTEM,
    Action.LOCK_RELEASE: _OPERATOR | _SYSTEM,
    Action.ALERT_ACK: _OPERATOR,
    Action.SUPERVISOR_READ: _OPERATOR,
    Action.ACTOR_RESTART: _ADMIN,
    Action.USER_READ: _ADMIN,
    Action.USER_MANAGE: _ADMIN,
    Action.TOKEN_ISSUE_SYSTEM: _ADMIN,
    Action.TOKEN_REVOKE: _ADMIN,
    Action.AUDIT_READ: _ADMIN,
    Action.SETTINGS_MANAGE: _ADMIN,
    Action.WORKER_CLAIM: _SYSTEM,
    Action.WORKER_HEARTBEAT: _SYSTEM,
    Action.WORKER_REPORT: _SYSTEM,
    Action.WEBHOOK_RECEIVE: _SYSTEM,
}

AUTHORISATION_TABLE: Mapping[Action, frozenset[Role]] = MappingProxyType(_TABLE)
"""Action -> the roles allowed to perform it. Read-only; covers every Action (checked at import)."""

if set(_TABLE) != set(Action):  # pragma: no cover - guards against adding an Action without a row
    raise RuntimeError(f"authorisation table is missing {set(Action) - set(_TABLE)}")


def is_allowed(role: Role, action: Action) -> bool:
    """True when `role` may perform `action`. The only authorisation check in orch."""
    return role in _TABLE[action]


def parse_role(value: str) -> Role:
    """Role from its name; ValueError for anything else."""
    return Role(value)
