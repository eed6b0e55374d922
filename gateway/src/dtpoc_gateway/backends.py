"""gRPC channels to the backends and one generic multicallable per method.

Nothing here knows a particular RPC: a method is called by its path
(``/pkg.Service/Method``) with the generated message classes' serializers,
through ``channel.unary_unary`` / ``unary_stream`` / ``stream_unary``.
Channels are opened on the server's event loop (at application start) and
closed on shutdown; one channel per distinct address.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc

from dtpoc_common import grpcclient
from dtpoc_common import logging as dlog
from dtpoc_gateway import catalog, httperrors

log = dlog.get_logger(__name__)


class Backends:
    """Where each proto service is served, and the calls into it."""

    def __init__(
        self, addresses: Mapping[str, str], *, max_message_bytes: int, token: str | None = None
    ) -> None:
        self.addresses = dict(addresses)
        self._max_message_bytes = max_message_bytes
        self._token = token
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._callables: dict[str, Any] = {}

    async def open(self, methods: Sequence[catalog.Method]) -> None:
        """Open channels and prepare a multicallable for each method."""
        for method in methods:
            address = self.addresses.get(method.service.full_name)
            if address is None:
                continue
            channel = self._channels.get(address)
            if channel is None:
                channel = grpcclient.open_channel(
                    address, max_message_bytes=self._max_message_bytes, token=self._token
                )
                self._channels[address] = channel
            serializer = method.request_class.SerializeToString
            deserializer = method.response_class.FromString
            if method.client_streaming and not method.server_streaming:
                factory: Any = channel.stream_unary
            elif method.server_streaming and not method.client_streaming:
                factory = channel.unary_stream
            elif method.client_streaming:
                factory = channel.stream_stream
            else:
                factory = channel.unary_unary
            self._callables[method.grpc_path] = factory(
                method.grpc_path,
                request_serializer=serializer,
                response_deserializer=deserializer,
            )
        for service, address in sorted(self.addresses.items()):
            log.info("backend configured", service=service, address=address)

    async def close(self, grace: float | None = None) -> None:
        for channel in self._channels.values():
            await channel.close(grace)
        self._channels.clear()
        self._callables.clear()

    def callable(self, method: catalog.Method) -> Any:
        """The multicallable of ``method``; 503 naming the service when it has no address."""
        found = self._callables.get(method.grpc_path)
        if found is None:
            raise httperrors.unconfigured(method.service.full_name)
        return found

    def reachable(self, method: catalog.Method) -> bool:
        """False when the service's channel is not connected (the backend is down)."""
        address = self.addresses.get(method.service.full_name)
        channel = self._channels.get(address) if address else None
        if channel is None:
            return False
        return channel.get_state(try_to_connect=False) == grpc.ChannelConnectivity.READY

    def error(
        self, method: catalog.Method, exc: grpc.aio.AioRpcError, *, request_id: str = ""
    ) -> httperrors.ApiError:
        """The HTTP answer for a failed call of ``method``; the backend's own text is logged."""
        api_error = httperrors.from_rpc_error(
            exc,
            service=method.service.full_name,
            reachable=self.reachable(method),
        )
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            log.error(
                "backend refused the gateway's own credential: check "
                "DTPOC_GATEWAY_GRPC_TOKEN_FILE against the backend's caller tokens",
                method=method.grpc_path,
                address=self.addresses.get(method.service.full_name),
                grpc_message=exc.details(),
                http_status=api_error.http_status,
                request_id=request_id,
            )
            return api_error
        level = log.warning if api_error.http_status >= 500 else log.info
        level(
            "backend call failed",
            method=method.grpc_path,
            grpc_code=exc.code().name,
            grpc_message=exc.details(),
            http_status=api_error.http_status,
            request_id=request_id,
        )
        return api_error
