"""Run an asyncio gRPC server the way every dtpoc service should.

:func:`serve` adds the standard health checking and reflection services,
maps :class:`~dtpoc_common.errors.DomainError` to gRPC status codes in one
place (an unexpected exception becomes INTERNAL with a generic message; its
traceback goes to the log only), and stops gracefully on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import status_pb2  # type: ignore[import-untyped]
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dtpoc_common import errors
from dtpoc_common import logging as dlog
from dtpoc_common.settings import BaseServiceSettings

log = dlog.get_logger(__name__)

INTERNAL_MESSAGE = "internal error; the server log has the details"
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class Registration:
    """One servicer to serve: its fully qualified service name and adder."""

    service_name: str
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException) -> None:
    if isinstance(exc, errors.DomainError):
        await context.abort(exc.code, errors.describe(exc), trailing_metadata=_status_details(exc))
    log.exception("unhandled error in rpc", error_type=type(exc).__name__)
    await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)


def _status_details(exc: errors.DomainError) -> tuple[tuple[str, bytes], ...]:
    """The ``grpc-status-details-bin`` trailer (a google.rpc.Status) of an error with details."""
    if not exc.details:
        return ()
    status = status_pb2.Status(code=exc.code.value[0], message=errors.describe(exc))
    for detail in exc.details:
        status.details.add().Pack(detail)
    return ((_STATUS_DETAILS_KEY, status.SerializeToString()),)


def _is_abort(exc: BaseException) -> bool:
    # context.abort() raises an exception that must pass through untouched.
    return isinstance(exc, grpc.aio.AbortError | asyncio.CancelledError)


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Turns domain errors into status codes for every method of every servicer."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return handler
        wrapped: Callable[[Any, Any], Any]
        if handler.unary_unary or handler.stream_unary:
            wrapped = _mapped_unary(handler.unary_unary or handler.stream_unary)
            factory = (
                grpc.unary_unary_rpc_method_handler
                if handler.unary_unary
                else grpc.stream_unary_rpc_method_handler
            )
        else:
            wrapped = _mapped_stream(handler.unary_stream or handler.stream_stream)
            factory = (
                grpc.unary_stream_rpc_method_handler
                if handler.unary_stream
                else grpc.stream_stream_rpc_method_handler
            )
        return factory(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _mapped_unary(inner: Any) -> Callable[[Any, Any], Awaitable[Any]]:
    """A method with one answer whose domain errors abort the call with their status."""

    async def unary_response(request: Any, context: Any) -> Any:
        try:
            return await inner(request, context)
        except BaseException as exc:
            if _is_abort(exc):
                raise
            await _abort(context, exc)

    return unary_response


def _mapped_stream(inner: Any) -> Callable[[Any, Any], AsyncIterator[Any]]:
    """A streaming method whose domain errors, raised mid-stream too, abort the call."""

    async def stream_response(request: Any, context: Any) -> AsyncIterator[Any]:
        try:
            async for item in inner(request, context):
                yield item
        except BaseException as exc:
            if _is_abort(exc):
                raise
            await _abort(context, exc)

    return stream_response


def server_options(settings: BaseServiceSettings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]


async def start(
    registrations: Sequence[Registration],
    settings: BaseServiceSettings,
    *,
    auth: grpc.aio.ServerInterceptor | None = None,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Start a server with health and reflection; answer it and its bound port.

    ``auth`` (a :class:`dtpoc_common.grpcauth.AuthInterceptor`) runs first,
    so a refused call never reaches a servicer."""
    interceptors: list[grpc.aio.ServerInterceptor] = [ErrorMappingInterceptor()]
    if auth is not None:
        interceptors.insert(0, auth)
    server = grpc.aio.server(interceptors=interceptors, options=server_options(settings))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names: list[str] = []
    for registration in registrations:
        registration.add_to_server(registration.servicer, server)
        names.append(registration.service_name)
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    port = server.add_insecure_port(settings.listen)
    if port == 0:
        raise RuntimeError(f"cannot listen on {settings.listen}")
    await server.start()
    for name in [*names, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    host = settings.listen.rsplit(":", 1)[0]
    log.info("grpc server listening", address=f"{host}:{port}", services=names)
    return server, port, health_servicer


async def serve(
    registrations: Sequence[Registration],
    settings: BaseServiceSettings,
    *,
    on_stop: Iterable[Callable[[], Awaitable[None]]] = (),
    auth: grpc.aio.ServerInterceptor | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain in-flight calls and stop."""
    server, _port, health_servicer = await start(registrations, settings, auth=auth)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", grace_seconds=settings.shutdown_grace_seconds)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(settings.shutdown_grace_seconds)
    for callback in on_stop:
        await callback()
