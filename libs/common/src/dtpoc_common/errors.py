"""Domain errors, one type per kind of failure, mapped once to gRPC status.

Services raise these; each type's ``code`` is its gRPC status, which the
server interceptor (:mod:`dtpoc_common.grpcserver`) answers with, and
the gateway maps gRPC status to HTTP. Messages are written for the caller:
they never carry exception text or stack traces of the server.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import message as protobuf_message


class DomainError(Exception):
    """Base of every error a caller is meant to see.

    ``details`` are google.rpc detail messages (``PreconditionFailure``, ...)
    sent with the status, for callers that want the structure behind the
    message.
    """

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        details: Sequence[protobuf_message.Message] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = tuple(details)


class InvalidArgument(DomainError):
    """The request is malformed; ``field`` names the offending field."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(DomainError):
    """The named thing does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    """The thing to create exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    """The system is not in a state that allows the operation."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(DomainError):
    """The caller is known but may not do this (HTTP 403); the message says who may."""

    code = grpc.StatusCode.PERMISSION_DENIED


class TooLarge(DomainError):
    """A size limit was exceeded."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(DomainError):
    """A dependency (database, cluster, another service) cannot be reached."""

    code = grpc.StatusCode.UNAVAILABLE


class Unimplemented(DomainError):
    """The operation is declared but not implemented."""

    code = grpc.StatusCode.UNIMPLEMENTED


class Aborted(DomainError):
    """A concurrent change got there first; retrying may succeed."""

    code = grpc.StatusCode.ABORTED


class InUse(DomainError):
    """The thing is still used by others (HTTP 409); the details say by whom.

    ABORTED rather than FAILED_PRECONDITION because the gateway answers
    ABORTED with 409 Conflict, the status REST clients expect for "still in
    use".
    """

    code = grpc.StatusCode.ABORTED


def describe(error: DomainError) -> str:
    """The message sent to the caller: the field first when one is named."""
    if error.field:
        return f"{error.field}: {error.message}"
    return error.message
