"""The role x action matrix: every action, every role, the expected answer written out by hand."""

from __future__ import annotations

import pytest

from actors.security.roles import AUTHORISATION_TABLE, Action, Role, is_allowed

ADM, OPS, VIEW, SYS = "admin", "operator", "viewer", "system"

# action -> roles allowed. Written independently of roles.py: a change there must be a change here.
EXPECTED: dict[str, set[str]] = {
    "task.read": {ADM, OPS, VIEW, SYS},
    "event.stream": {ADM, OPS, VIEW},
    "lock.read": {ADM, OPS, VIEW, SYS},
    "alert.read": {ADM, OPS, VIEW},
    "metrics.read": {ADM, OPS, VIEW, SYS},
    "task.dispatch": {ADM, OPS, SYS},
    "task.cancel": {ADM, OPS},
    "task.retry": {ADM, OPS},
    "task.set_status": {ADM, OPS, SYS},
    "lock.acquire": {ADM, OPS, SYS},
    "lock.release": {ADM, OPS, SYS},
    "alert.ack": {ADM, OPS},
    "supervisor.read": {ADM, OPS},
    "actor.restart": {ADM},
    "user.read": {ADM},
    "user.manage": {ADM},
    "token.issue_system": {ADM},
    "token.revoke": {ADM},
    "audit.read": {ADM},
    "settings.manage": {ADM},
    "worker.claim": {SYS},
    "worker.heartbeat": {SYS},
    "worker.report": {SYS},
    "webhook.receive": {SYS},
}


def test_every_action_has_an_expected_row() -> None:
    assert {a.value for a in Action} == set(EXPECTED)
    assert set(AUTHORISATION_TABLE) == set(Action)


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("role", list(Role))
def test_role_action_matrix(role: Role, action: Action) -> None:
    assert is_allowed(role, action) == (role.value in EXPECTED[action.value])


def test_human_roles_nest_admin_over_operator_over_viewer() -> None:
    for action in Action:
        if is_allowed(Role.VIEWER, action):
            assert is_allowed(Role.OPERATOR, action)
        if is_allowed(Role.OPERATOR, action):
            assert is_allowed(Role.ADMIN, action)


def test_system_cannot_administer() -> None:
    assert not any(
        is_allowed(Role.SYSTEM, a) for a in Action if a.value.split(".")[0] in {"user", "token", "audit"}
    )


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        AUTHORISATION_TABLE[Action.USER_MANAGE] = frozenset(Role)  # type: ignore[index]
