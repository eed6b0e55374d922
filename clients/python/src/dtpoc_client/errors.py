"""Typed errors: what the server refused, in its own words.

Every refusal of the server becomes an :class:`ApiError` subclass chosen by
the gRPC code name the gateway puts in its error body (``status``), or by
the HTTP status when the body has none (a proxy's answer). Over gRPC the
same classes come from the call's status code, so code written against one
transport catches the same exceptions on the other.
"""

from __future__ import annotations

from typing import Any


class DtpocError(Exception):
    """Base of everything this package raises on purpose."""


class ConnectionFailed(DtpocError):
    """The server could not be reached at all (no answer, refused, TLS failure)."""


class ProtocolError(DtpocError):
    """The server answered something that is not the API's shape."""


class InvalidSpec(DtpocError):
    """A launch body that is not the launch request's shape (found before any call)."""


class ApiError(DtpocError):
    """The server refused the request.

    ``code`` is the HTTP status (over gRPC: the HTTP status the gateway would
    have answered), ``status`` the gRPC code name (``NOT_FOUND``), ``message``
    the server's explanation, ``details`` its google.rpc detail messages as
    JSON.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int,
        status: str,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details or []

    def __str__(self) -> str:
        return f"{self.message} ({self.code} {self.status})"


class InvalidArgument(ApiError):
    """400: the request was malformed or broke a rule (the message says which field)."""


class Unauthenticated(ApiError):
    """401: no token, or a token the server does not accept."""


class PermissionDenied(ApiError):
    """403: the token is known but may not do this."""


class NotFound(ApiError):
    """404: no such file, service or replica."""


class Conflict(ApiError):
    """409: refused because of the current state (a file still mounted, ...)."""


class TooLarge(ApiError):
    """413: a body or file beyond the server's limit."""


class Unavailable(ApiError):
    """503: a backend is down or not configured; try again later."""


class ServerError(ApiError):
    """5xx: the server failed; its log has the request id."""


_BY_STATUS: dict[str, type[ApiError]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "OUT_OF_RANGE": InvalidArgument,
    "FAILED_PRECONDITION": InvalidArgument,
    "UNAUTHENTICATED": Unauthenticated,
    "PERMISSION_DENIED": PermissionDenied,
    "NOT_FOUND": NotFound,
    "ALREADY_EXISTS": Conflict,
    "ABORTED": Conflict,
    "RESOURCE_EXHAUSTED": TooLarge,
    "UNAVAILABLE": Unavailable,
}
_BY_HTTP: dict[int, type[ApiError]] = {
    400: InvalidArgument,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    503: Unavailable,
}
HTTP_OF_GRPC: dict[str, int] = {
    "INVALID_ARGUMENT": 400,
    "OUT_OF_RANGE": 400,
    "FAILED_PRECONDITION": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 413,
    "CANCELLED": 499,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
"""The gateway's mapping (gateway/README.md, Errors), so both transports agree on ``code``."""


def api_error(
    *, code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> ApiError:
    """The :class:`ApiError` subclass for a refusal."""
    cls = _BY_STATUS.get(status) or _BY_HTTP.get(code)
    if cls is None:
        cls = ServerError if code >= 500 else ApiError
    return cls(message, code=code, status=status, details=details)


def from_problem(http_status: int, body: object, *, fallback: str) -> ApiError:
    """An error from the gateway's error body (``{"code", "status", "message", ...}``).

    ``fallback`` is the message when the body is not the gateway's (e.g. a
    proxy's HTML page): the client then still raises the right class.
    """
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail")
        status = body.get("status")
        details = body.get("details")
        return api_error(
            code=http_status,
            status=status if isinstance(status, str) else "",
            message=message if isinstance(message, str) and message else fallback,
            details=details if isinstance(details, list) else None,
        )
    return api_error(code=http_status, status="", message=fallback)
