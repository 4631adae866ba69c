"""JSON shapes of the security endpoints: OpenAPI schemas and renderers (never a secret beyond the
tokens a login or issue answer must carry)."""

from __future__ import annotations

import time
from typing import Any

from actors.security.messages import AuditRow, Role, SystemTokenInfo, TokenPair, UserInfo

__all__ = [
    "ROLES",
    "TOKEN_INFO_SCHEMA",
    "TOKEN_PAIR_SCHEMA",
    "USER_SCHEMA",
    "array_of",
    "audit_json",
    "pair_json",
    "token_info_json",
    "user_json",
]

ROLES = [r.value for r in Role if r is not Role.SYSTEM]

_STR: dict[str, Any] = {"type": "string"}
_NUM: dict[str, Any] = {"type": "number"}
TOKEN_PAIR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "access_token": _STR,
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer", "description": "Seconds the access token stays valid."},
        "expires_at": _NUM,
        "refresh_token": _STR,
        "refresh_expires_at": _NUM,
        "role": {"enum": ROLES},
    },
    "required": ["access_token", "token_type", "expires_in", "refresh_token", "role"],
}
USER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": _STR,
        "role": {"enum": ROLES},
        "disabled": {"type": "boolean"},
        "created_at": _NUM,
        "updated_at": _NUM,
    },
    "required": ["name", "role", "disabled"],
}
TOKEN_INFO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "jti": _STR,
        "name": _STR,
        "created_by": _STR,
        "created_at": _NUM,
        "expires_at": _NUM,
        "revoked_at": {"type": ["number", "null"]},
    },
    "required": ["jti", "name", "expires_at"],
}


def array_of(items: dict[str, Any], key: str) -> dict[str, Any]:
    return {"type": "object", "properties": {key: {"type": "array", "items": items}}, "required": [key]}


def pair_json(pair: TokenPair) -> dict[str, Any]:
    return {
        "access_token": pair.access_token,
        "token_type": pair.token_type,
        "expires_in": max(0, int(pair.access_expires_at - time.time())),
        "expires_at": pair.access_expires_at,
        "refresh_token": pair.refresh_token,
        "refresh_expires_at": pair.refresh_expires_at,
        "role": pair.role.value,
    }


def user_json(user: UserInfo) -> dict[str, Any]:
    """The JSON form of a user (never a password hash)."""
    return {
        "name": user.name,
        "role": user.role.value,
        "disabled": user.disabled,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    }


def token_info_json(info: SystemTokenInfo) -> dict[str, Any]:
    """The JSON form of a listed system token (never the token itself)."""
    return {
        "jti": info.jti,
        "name": info.name,
        "created_by": info.created_by,
        "created_at": info.created_at,
        "expires_at": info.expires_at,
        "revoked_at": info.revoked_at,
    }


def audit_json(row: AuditRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at,
        "type": row.type,
        "subject": row.subject,
        "client": row.client,
        "data": row.data,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }
