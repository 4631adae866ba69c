"""Security subcommands of `orch`: log in, manage users and worker tokens, create the first admin.

    orch login --user NAME [--password-stdin]                 prints an access token (for ORCH_TOKEN)
    orch users add NAME --role ROLE [--password-stdin | --generate]
    orch users list | disable NAME | enable NAME | reset-password NAME | set-role NAME ROLE
    orch tokens issue NAME [--ttl SECONDS] | list | revoke JTI
    orch admin create [NAME] [--password-stdin | --generate]  (on the data dir, or --url for a running node)

They talk to a running node over HTTP (`--url`, default $ORCH_URL or http://127.0.0.1:8080; `--token`,
default $ORCH_TOKEN). With `--data-dir`/`--config`/`--local` they work directly on the data dir instead,
which is refused while a node runs on it. `orch admin create` works on the data dir unless `--url` is given.
Passwords are never taken as arguments (they would show in `ps`): stdin, a terminal prompt, or generated.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import trio

from actors.security.actor import SecurityActor
from actors.security.messages import (
    ChangeRole,
    CreateUser,
    DisableUser,
    IssueSystemToken,
    ListSystemTokens,
    ListUsers,
    ResetPassword,
    RevokeToken,
    Role,
    SecurityError,
    SecurityMsg,
    SystemToken,
    SystemTokenInfo,
    UserInfo,
)
from actors.storage import Database
from orch.cli import EXIT_FAILURE, CliError
from orch.config import Config, ConfigError, load_config
from orch.http.security_views import token_info_json, user_json
from orch.security_wiring import generate_password
from runtime import Reply, open_actor

__all__ = ["register"]

T = TypeVar("T")
HUMAN_ROLES = [r.value for r in Role if r is not Role.SYSTEM]
DEFAULT_URL = "http://127.0.0.1:8080"


# ------------------------------------------------------------------------------------------- arguments
def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help=f"node URL (default: $ORCH_URL or {DEFAULT_URL})")
    parser.add_argument("--token", help="bearer token (default: $ORCH_TOKEN)")
    parser.add_argument("--local", action="store_true", help="work directly on the data dir (node stopped)")
    parser.add_argument("--data-dir", type=Path, help="data directory to work on directly (implies --local)")
    parser.add_argument("--config", "-c", type=Path, help="config file for --local (default: $ORCH_CONFIG)")


def _add_password(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    group.add_argument("--generate", action="store_true", help="generate a strong password and print it once")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `login`, `users`, `tokens` and `admin` to the `orch` parser."""
    login = sub.add_parser("login", help="log in and print an access token (export it as ORCH_TOKEN)")
    login.add_argument("--user", "-u", required=True, help="user name")
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    login.add_argument("--url", help=f"node URL (default: $ORCH_URL or {DEFAULT_URL})")
    login.add_argument("--json", action="store_true", help="print the whole token response as JSON")
    login.set_defaults(handler=_cmd_login)

    users_parser = sub.add_parser("users", help="manage users (admin)")
    users = users_parser.add_subparsers(dest="action", metavar="ACTION")
    users.required = True
    add = users.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=HUMAN_ROLES)
    _add_password(add)
    listing = users.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true", help="print JSON")
    toggles = (("disable", "disable a user (revokes its tokens)"), ("enable", "re-enable a user"))
    for name, help_text in toggles:
        users.add_parser(name, help=help_text).add_argument("name")
    reset = users.add_parser("reset-password", help="set a new password (revokes the user's tokens)")
    reset.add_argument("name")
    _add_password(reset)
    role = users.add_parser("set-role", help="change a user's role (revokes its tokens)")
    role.add_argument("name")
    role.add_argument("role", choices=HUMAN_ROLES)
    for parser in (add, listing, reset, role, *_children(users, ("disable", "enable"))):
        _add_target(parser)
        parser.set_defaults(handler=_cmd_users)

    tokens = sub.add_parser("tokens", help="tokens for workers and integrations (admin)")
    tsub = tokens.add_subparsers(dest="action", metavar="ACTION")
    tsub.required = True
    issue = tsub.add_parser("issue", help="issue a long-lived system token; prints it once on stdout")
    issue.add_argument("name", help="worker or integration name, e.g. worker-ai-01")
    issue.add_argument("--ttl", type=float, help="lifetime in seconds (default: the configured maximum)")
    tlist = tsub.add_parser("list", help="list system tokens (never the tokens themselves)")
    tlist.add_argument("--json", action="store_true", help="print JSON")
    revoke = tsub.add_parser("revoke", help="revoke a token by its id (jti)")
    revoke.add_argument("jti")
    for parser in (issue, tlist, revoke):
        _add_target(parser)
        parser.set_defaults(handler=_cmd_tokens)

    admin = sub.add_parser("admin", help="bootstrap administration").add_subparsers(dest="action")
    admin.required = True
    create = admin.add_parser("create", help="create an admin (on the data dir, or over HTTP with --url)")
    create.add_argument("name", nargs="?", default="admin")
    _add_password(create)
    _add_target(create)
    create.set_defaults(handler=_cmd_admin_create)


def _children(
    group: argparse._SubParsersAction[argparse.ArgumentParser], names: tuple[str, ...]
) -> list[argparse.ArgumentParser]:
    return [group.choices[n] for n in names]


# ------------------------------------------------------------------------------------------- passwords
def _password(args: argparse.Namespace, *, user: str) -> tuple[str, bool]:
    """(password, generated?) from --generate, --password-stdin or a terminal prompt."""
    if getattr(args, "generate", False):
        return generate_password(), True
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise CliError("no password on stdin")
        return line, False
    if not sys.stdin.isatty():
        raise CliError("no password given: use --password-stdin, --generate, or run in a terminal")
    first = getpass.getpass(f"password for {user}: ")
    if getpass.getpass("again: ") != first:
        raise CliError("the passwords do not match")
    return first, False


def _show_generated(name: str, password: str) -> None:
    print(f"user:     {name}\npassword: {password}\n(shown once: store it now)")


# ------------------------------------------------------------------------------------------------ HTTP
def _url(args: argparse.Namespace) -> str:
    return str(args.url or os.environ.get("ORCH_URL") or DEFAULT_URL).rstrip("/")


def _request(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    """Call the node; the decoded JSON answer, or CliError with the problem's detail."""
    token = getattr(args, "token", None) or os.environ.get("ORCH_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = _url(args)
    try:
        response = httpx.request(method, url + path, json=body, headers=headers, timeout=30.0)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the node at {url}: {exc}", EXIT_FAILURE) from None
    if response.status_code >= 400:
        raise CliError(_problem_text(response), EXIT_FAILURE)
    return response.json() if response.content else None


def _problem_text(response: httpx.Response) -> str:
    try:
        data = response.json()
        detail = data.get("detail") or data.get("title")
    except (ValueError, AttributeError):
        detail = response.text[:200]
    hint = " (log in with `orch login` and set ORCH_TOKEN)" if response.status_code == 401 else ""
    return f"{response.status_code} {detail}{hint}"


# ---------------------------------------------------------------------------------------------- direct
def _is_local(args: argparse.Namespace) -> bool:
    return bool(args.local or args.data_dir or args.config)


def _local_config(args: argparse.Namespace) -> Config:
    try:
        return load_config(args.config, overrides={"database.data_dir": args.data_dir})
    except ConfigError as exc:
        raise CliError("invalid configuration:\n  " + "\n  ".join(exc.problems)) from None


def _direct(args: argparse.Namespace, make: Callable[[Reply[T]], SecurityMsg]) -> T:
    """Run one request against a security actor on the data dir (no node may be running on it)."""
    from orch.datadir_lock import DataDirInUse, hold_db_lock
    from orch.security_wiring import security_settings

    config = _local_config(args)
    db_path = config.database.db_path

    async def run() -> T:
        with hold_db_lock(db_path):
            settings = security_settings(config)
            async with Database.open(db_path, synchronous=config.database.synchronous) as db:
                async with open_actor(lambda: SecurityActor(db, settings), name="security") as ref:
                    try:
                        return await ref.ask(make)
                    except SecurityError as exc:
                        refused = exc  # raised once the actor and database closed cleanly
        raise refused

    try:
        return trio.run(run)
    except DataDirInUse:
        raise CliError(
            f"a node is running on {config.database.data_dir}: use --url (and an admin --token) instead",
            EXIT_FAILURE,
        ) from None
    except ConfigError as exc:
        raise CliError("invalid configuration:\n  " + "\n  ".join(exc.problems)) from None
    except SecurityError as exc:
        raise CliError(f"{exc.status} {exc.message}", EXIT_FAILURE) from None


def _by() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


# -------------------------------------------------------------------------------------------- commands
def _cmd_login(args: argparse.Namespace) -> int:
    password, _ = _password(args, user=args.user)
    data = _request(args, "POST", "/auth/login", {"username": args.user, "password": password})
    print(json.dumps(data, indent=2) if args.json else data["access_token"])
    return 0


def _cmd_users(args: argparse.Namespace) -> int:
    action: str = args.action
    if action == "list":
        users = _users_list(args)
        if args.json:
            print(json.dumps(users, indent=2))
        else:
            for u in users:
                state = "disabled" if u["disabled"] else "active"
                print(f"{u['name']:<32} {u['role']:<9} {state}")
        return 0
    if action in ("add", "reset-password"):
        password, generated = _password(args, user=args.name)
        user = _users_add(args, password) if action == "add" else _users_reset(args, password)
        if generated:
            _show_generated(user["name"], password)
        print(f"{'created' if action == 'add' else 'password reset for'} {user['name']} ({user['role']})")
        return 0
    user = _users_change(args)
    print(f"{user['name']}: role {user['role']}, {'disabled' if user['disabled'] else 'active'}")
    return 0


def _users_list(args: argparse.Namespace) -> list[dict[str, Any]]:
    if _is_local(args):
        users: tuple[UserInfo, ...] = _direct(args, ListUsers)
        return [user_json(u) for u in users]
    return list(_request(args, "GET", "/users")["users"])


def _users_add(args: argparse.Namespace, password: str) -> dict[str, Any]:
    if _is_local(args):
        role, by = Role(args.role), _by()
        return user_json(_direct(args, lambda r: CreateUser(args.name, password, role, by, r)))
    body = {"name": args.name, "password": password, "role": args.role}
    return dict(_request(args, "POST", "/users", body))


def _users_reset(args: argparse.Namespace, password: str) -> dict[str, Any]:
    if _is_local(args):
        by = _by()
        return user_json(_direct(args, lambda r: ResetPassword(args.name, password, by, r)))
    return dict(_request(args, "PUT", f"/users/{args.name}/password", {"password": password}))


def _users_change(args: argparse.Namespace) -> dict[str, Any]:
    action, name, by = args.action, args.name, _by()
    if _is_local(args):
        info: UserInfo
        if action == "set-role":
            info = _direct(args, lambda r: ChangeRole(name, Role(args.role), by, r))
        else:
            info = _direct(args, lambda r: DisableUser(name, by, r, action == "disable"))
        return user_json(info)
    if action == "set-role":
        return dict(_request(args, "PUT", f"/users/{name}/role", {"role": args.role}))
    return dict(_request(args, "POST", f"/users/{name}/{action}"))


def _cmd_tokens(args: argparse.Namespace) -> int:
    action: str = args.action
    local, by = _is_local(args), _by()
    if action == "issue":
        if args.ttl is not None and args.ttl <= 0:
            raise CliError("--ttl must be > 0 seconds")
        if local:
            issued: SystemToken = _direct(args, lambda r: IssueSystemToken(args.name, by, r, args.ttl))
            data = {"token": issued.token, "jti": issued.jti, "name": issued.name}
        else:
            body = {"name": args.name} if args.ttl is None else {"name": args.name, "ttl": args.ttl}
            data = _request(args, "POST", "/tokens", body)
        print(f"issued token {data['jti']} for {data['name']} (shown once)", file=sys.stderr)
        print(data["token"])
        return 0
    if action == "revoke":
        if local:
            _direct(args, lambda r: RevokeToken(args.jti, by, r))
        else:
            _request(args, "DELETE", f"/tokens/{args.jti}")
        print(f"revoked {args.jti}")
        return 0
    if local:
        infos: tuple[SystemTokenInfo, ...] = _direct(args, ListSystemTokens)
        tokens = [token_info_json(t) for t in infos]
    else:
        tokens = list(_request(args, "GET", "/tokens")["tokens"])
    if args.json:
        print(json.dumps(tokens, indent=2))
    for t in [] if args.json else tokens:
        state = "revoked" if t["revoked_at"] is not None else "active"
        print(f"{t['jti']:<36} {t['name']:<24} {state}")
    return 0


def _cmd_admin_create(args: argparse.Namespace) -> int:
    password, generated = _password(args, user=args.name)
    if args.url:
        body = {"name": args.name, "password": password, "role": "admin"}
        user = dict(_request(args, "POST", "/users", body))
    else:
        by = _by()
        user = user_json(_direct(args, lambda r: CreateUser(args.name, password, Role.ADMIN, by, r)))
    if generated:
        _show_generated(user["name"], password)
    print(f"created admin {user['name']}")
    return 0
