"""gRPC status -> HTTP status, and the one error body every failure uses.

The mapping is google.rpc's (``google/rpc/code.proto``), as grpc-gateway and
Envoy apply it, with two documented choices:

* ``FAILED_PRECONDITION`` is 400 as google.rpc says (not 412, which HTTP
  keeps for conditional request headers); conflicts are ``ABORTED`` and
  ``ALREADY_EXISTS``, both 409.
* ``RESOURCE_EXHAUSTED`` is 413: the services raise it only for size limits,
  which retrying never helps (429 would invite a retry); the platform has no
  quotas.

The body is ``{"code", "status", "message", "details", "detail"}``:

* ``code`` is the **HTTP** status (what a REST client already switches on);
  ``status`` the gRPC code name (``NOT_FOUND``) for clients that want the
  finer kind;
* ``details`` carries google.rpc detail messages in proto JSON
  (``google.rpc.BadRequest`` with the offending field for input errors);
* ``detail`` repeats ``message`` because clients of the original (FastAPI)
  read ``{"detail": ...}``.

INTERNAL, UNKNOWN and DATA_LOSS never forward the backend's text: the
message is generic and the log has the rest. UNAUTHENTICATED from a backend
means it refused the *gateway's own* credential (people's tokens are checked
here, never forwarded): a server misconfiguration, answered **502** without
the backend's text, so that a client does not take it for a wrong API token.
Other messages pass through :mod:`dtpoc_gateway.redact`: addresses are
replaced, and a text of gRPC or a library (not a service's own message)
becomes a plain description of the status. No body ever carries a trace.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from starlette.responses import Response

from dtpoc_common import logging as dlog
from dtpoc_gateway import redact

log = dlog.get_logger(__name__)

#: Longest ``Retry-After`` the gateway passes on from a backend's RetryInfo.
MAX_RETRY_AFTER_SECONDS = 60

HTTP_FROM_GRPC: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

#: The gRPC code name a gateway-made HTTP status is reported with.
GRPC_FOR_HTTP: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    409: grpc.StatusCode.ABORTED,
    411: grpc.StatusCode.INVALID_ARGUMENT,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    416: grpc.StatusCode.OUT_OF_RANGE,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

HIDDEN_CODES = frozenset(
    {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
)
INTERNAL_MESSAGE = "internal error; the server log has the details"
#: What a client reads when a backend refuses the gateway's credential (module docs).
CREDENTIAL_REFUSED_MESSAGE = (
    "backend {service} does not accept this gateway's own credential: the platform is "
    "misconfigured, not your API token; the server log has the details"
)
_BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"


class ApiError(Exception):
    """An HTTP error answer; raised anywhere in a handler, rendered once."""

    def __init__(
        self,
        http_status: int,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        details: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message
        self.code = code or GRPC_FOR_HTTP.get(http_status, grpc.StatusCode.UNKNOWN)
        self.details = list(details)
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.http_status, self.code, self.message, self.details)

    def response(self) -> Response:
        return json_response(self.body(), status_code=self.http_status, headers=self.headers)


def error_body(
    http_status: int,
    code: grpc.StatusCode,
    message: str,
    details: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "code": http_status,
        "status": code.name,
        "message": message,
        "details": list(details),
        "detail": message,
    }


def json_response(
    payload: Any, *, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Compact UTF-8 JSON, the one encoding every answer uses."""
    content = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(
        content, status_code=status_code, headers=headers, media_type="application/json"
    )


def bad_request(message: str, *, field: str | None = None, status: int = 400) -> ApiError:
    """A 400 naming the offending field in the message and as a BadRequest detail."""
    details: list[dict[str, Any]] = []
    if field:
        details.append(
            {
                "@type": _BAD_REQUEST_TYPE,
                "field_violations": [{"field": field, "description": message}],
            }
        )
        if not message.startswith(f"{field}:"):
            message = f"{field}: {message}"
    return ApiError(status, message, code=grpc.StatusCode.INVALID_ARGUMENT, details=details)


def from_rpc_error(
    error: grpc.aio.AioRpcError,
    *,
    service: str,
    reachable: bool,
) -> ApiError:
    """Translate a failed call; ``reachable`` False means the channel never connected."""
    code = error.code()
    http_status = HTTP_FROM_GRPC.get(code, 500)
    headers: dict[str, str] = {}
    message = _public_message(code, error.details() or "", service=service)
    if code == grpc.StatusCode.UNAVAILABLE:
        # Unreachable, or reachable and overloaded (a full launch queue): both retryable,
        # after the backend's google.rpc.RetryInfo when it says how long (a queue does).
        headers["Retry-After"] = str(_retry_after(_status_details(error)))
        if not reachable:
            message = f"backend {service} is unreachable; try again later"
    elif code == grpc.StatusCode.UNAUTHENTICATED:
        return ApiError(
            502,
            CREDENTIAL_REFUSED_MESSAGE.format(service=service),
            code=grpc.StatusCode.INTERNAL,
        )
    elif code in HIDDEN_CODES:
        message = INTERNAL_MESSAGE
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"{service} did not answer in time"
    details = [] if code in HIDDEN_CODES else _scrubbed(_status_details(error))
    return ApiError(http_status, message, code=code, details=details, headers=headers)


def _retry_after(details: list[dict[str, Any]]) -> int:
    """Whole seconds of a ``RetryInfo`` detail (``retry_delay``, "2.5s"), else 1; at most
    ``MAX_RETRY_AFTER_SECONDS``."""
    for detail in details:
        if not str(detail.get("@type", "")).endswith("/google.rpc.RetryInfo"):
            continue
        try:
            seconds = float(str(detail.get("retry_delay", "")).removesuffix("s"))
        except ValueError:
            break
        return min(max(math.ceil(seconds), 1), MAX_RETRY_AFTER_SECONDS)
    return 1


def _public_message(code: grpc.StatusCode, text: str, *, service: str) -> str:
    """What a REST client may read of a backend's error text (module docs)."""
    if not text or redact.is_library_text(text):
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return f"the answer of {service} is larger than the gateway passes on"
        if code == grpc.StatusCode.UNAVAILABLE:
            return f"backend {service} is unavailable; try again later"
        return f"{service} failed: {code.name.lower().replace('_', ' ')}"
    return redact.scrub(text)


def unconfigured(service: str) -> ApiError:
    return ApiError(
        503,
        f"backend {service} is not configured on this gateway",
        code=grpc.StatusCode.UNAVAILABLE,
    )


def _scrubbed(value: Any) -> Any:
    """Detail messages with every string passed through :func:`redact.scrub`."""
    if isinstance(value, str):
        return redact.scrub(value)
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    if isinstance(value, dict):
        return {key: _scrubbed(item) for key, item in value.items()}
    return value


def _status_details(error: grpc.aio.AioRpcError) -> list[dict[str, Any]]:
    """google.rpc.Status details sent in the ``grpc-status-details-bin`` trailer."""
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except Exception:  # noqa: BLE001 - a malformed trailer only loses the details
            return []
        found: list[dict[str, Any]] = []
        for detail in status.details:
            try:
                found.append(json_format.MessageToDict(detail, preserving_proto_field_name=True))
            except (json_format.Error, TypeError, KeyError):
                found.append({"@type": detail.type_url})
        return found
    return []


# Importing the module registers the google.rpc detail types for MessageToDict.
_ = error_details_pb2


class StreamAborted(Exception):
    """The backend stream failed after the answer's headers were sent.

    Raised out of the body, so the server cuts the connection: a body that
    ended cleanly would pass for the whole file or log.
    """


def stream_aborted(
    what: str, exc: grpc.aio.AioRpcError, *, method: str, **fields: Any
) -> StreamAborted:
    """Log that the ``what`` stream failed after its headers; the error to raise."""
    code = exc.code().name
    log.warning(f"{what} stream failed after headers", method=method, grpc_code=code, **fields)
    return StreamAborted(code)
