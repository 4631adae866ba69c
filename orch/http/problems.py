"""RFC 9457 problem details: the HTTP error hierarchy and the ONE place exceptions become statuses.

Handlers raise `ApiError` subclasses (or let domain/runtime errors escape); `to_api_error` maps anything to
an `ApiError`, using the table filled by `register_error` (domain errors from the actors, runtime errors),
and `problem_body` renders it. Unexpected exceptions become a bare 500 that reveals nothing internal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from werkzeug.exceptions import HTTPException

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "InternalError",
    "Locked",
    "MalformedJson",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "RequestTimeout",
    "ServiceUnavailable",
    "ShuttingDown",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationFailed",
    "problem",
    "problem_body",
    "register_error",
    "to_api_error",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:orch:problem:"


class ApiError(Exception):
    """An error with an HTTP status. `extensions` become extra members of the problem document."""

    status: int = 500
    title: str = "Internal Server Error"
    slug: str = "internal"

    def __init__(
        self, detail: str | None = None, *, headers: Mapping[str, str] | None = None, **extensions: Any
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers: dict[str, str] = dict(headers or {})
        self.extensions = extensions

    @property
    def type_uri(self) -> str:
        """The problem `type` member."""
        return PROBLEM_TYPE_PREFIX + self.slug


def problem(
    status: int, slug: str, detail: str, *, title: str | None = None, headers: Mapping[str, str] | None = None
) -> ApiError:
    """An ApiError with any status (for mappings whose status is data, e.g. on the exception)."""
    error = ApiError(detail, headers=headers)
    error.status, error.slug = status, slug
    error.title = title or HTTPStatus(status).phrase
    return error


class BadRequest(ApiError):
    """400: the request cannot be understood."""

    status, title, slug = 400, "Bad Request", "bad-request"


class MalformedJson(BadRequest):
    """400: the body is not valid JSON (or not UTF-8)."""

    title, slug = "Malformed JSON", "malformed-json"


class Unauthorized(ApiError):
    """401: missing or invalid credentials."""

    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="orch"'}, **extensions)


class Forbidden(ApiError):
    """403: authenticated but not allowed."""

    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(ApiError):
    """404: unknown route or resource."""

    status, title, slug = 404, "Not Found", "not-found"


class MethodNotAllowed(ApiError):
    """405: the route exists, the method does not; `Allow` lists the methods that do."""

    status, title, slug = 405, "Method Not Allowed", "method-not-allowed"

    def __init__(self, detail: str | None = None, *, allowed: list[str] | None = None) -> None:
        headers = {"Allow": ", ".join(sorted(allowed))} if allowed else None
        super().__init__(detail, headers=headers)


class RequestTimeout(ApiError):
    """408: the body did not arrive in time."""

    status, title, slug = 408, "Request Timeout", "request-timeout"


class Conflict(ApiError):
    """409: illegal state transition, stale lease, duplicate, ..."""

    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(ApiError):
    """413: the body exceeds `server.max_body_bytes`."""

    status, title, slug = 413, "Payload Too Large", "payload-too-large"


class UnsupportedMediaType(ApiError):
    """415: the body is not JSON."""

    status, title, slug = 415, "Unsupported Media Type", "unsupported-media-type"


class ValidationFailed(ApiError):
    """422: well-formed JSON that breaks a rule; `field` names the offending member (dotted path)."""

    status, title, slug = 422, "Validation Failed", "validation-failed"

    def __init__(self, field: str, problem: str) -> None:
        pointer = "/" + field.replace("~", "~0").replace("/", "~1").replace(".", "/") if field else ""
        super().__init__(
            f"{field}: {problem}" if field else problem,
            field=field,
            errors=[{"field": field, "pointer": "#" + pointer, "detail": problem}],
        )
        self.field = field
        self.problem = problem


class Locked(ApiError):
    """423: the account is locked out."""

    status, title, slug = 423, "Locked", "locked"


def _retry_headers(retry_after: float, headers: Mapping[str, str] | None) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(retry_after))), **(headers or {})}


class TooManyRequests(ApiError):
    """429: rate limited; always carries `Retry-After` (whole seconds, at least 1)."""

    status, title, slug = 429, "Too Many Requests", "rate-limited"

    def __init__(
        self, detail: str | None = None, *, retry_after: float, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail, headers=_retry_headers(retry_after, headers))
        self.retry_after = retry_after


class InternalError(ApiError):
    """500: a bug. The detail never says more than this."""

    status, title, slug = 500, "Internal Server Error", "internal"

    def __init__(self) -> None:
        super().__init__("The server failed to handle this request; it has been logged.")


class ServiceUnavailable(ApiError):
    """503: overloaded (mailbox full) or temporarily unable; always carries `Retry-After`."""

    status, title, slug = 503, "Service Unavailable", "unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: float = 1.0) -> None:
        super().__init__(detail, headers=_retry_headers(retry_after, None))
        self.retry_after = retry_after


class ShuttingDown(ServiceUnavailable):
    """503: the node is draining; retry against another node or after the restart."""

    slug = "shutting-down"

    def __init__(self, detail: str | None = None, *, retry_after: float = 5.0) -> None:
        super().__init__(detail or "The node is shutting down.", retry_after=retry_after)


_Mapper = Callable[[BaseException], ApiError]
_MAPPERS: dict[type[BaseException], _Mapper] = {}


def register_error(exc_type: type[BaseException], mapper: _Mapper) -> None:
    """Map `exc_type` (and subclasses, unless they have their own entry) to an ApiError at the edge."""
    _MAPPERS[exc_type] = mapper


def to_api_error(exc: BaseException) -> ApiError | None:
    """The ApiError for `exc`, or None when nothing maps it (the caller answers 500 and logs it)."""
    if isinstance(exc, ApiError):
        return exc
    for cls in type(exc).__mro__:
        mapper = _MAPPERS.get(cls)
        if mapper is not None:
            return mapper(exc)
    if isinstance(exc, HTTPException):
        return _from_werkzeug(exc)
    return None


_WERKZEUG: dict[int, Callable[[str | None], ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    408: RequestTimeout,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    423: Locked,
}


def _from_werkzeug(exc: HTTPException) -> ApiError:
    code = exc.code or 500
    if code == 404:
        return NotFound("No route matches this path.")
    if code == 405:
        valid = getattr(exc, "valid_methods", None)
        return MethodNotAllowed("This route does not accept this method.", allowed=list(valid or []))
    if code == 413:
        return PayloadTooLarge("The request body exceeds the configured limit.")
    factory = _WERKZEUG.get(code)
    if factory is not None:
        return factory(exc.description)
    if code == 429:
        return TooManyRequests(exc.description, retry_after=1.0)
    if code == 503:
        return ServiceUnavailable(exc.description)
    return InternalError() if code >= 500 else BadRequest(exc.description)


def problem_body(error: ApiError, *, instance: str | None, request_id: str | None) -> dict[str, Any]:
    """The RFC 9457 document for `error` (extension members after the standard ones)."""
    body: dict[str, Any] = {
        "type": error.type_uri,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    if instance is not None:
        body["instance"] = instance
    if request_id is not None:
        body["request_id"] = request_id
    for key, value in error.extensions.items():
        body.setdefault(key, value)
    return body
