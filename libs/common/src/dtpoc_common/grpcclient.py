"""Channels to other dtpoc services, with the same message limits as servers.

A channel opened with ``token`` presents it on every call (see
:mod:`dtpoc_common.grpcauth`): that is how a server knows the caller.
"""

from __future__ import annotations

import grpc

from dtpoc_common import grpcauth

DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def open_channel(
    target: str,
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    token: str | None = None,
) -> grpc.aio.Channel:
    """An asyncio channel to ``target`` (``host:port``). Callers give every
    call a ``timeout``: no call waits forever."""
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.enable_retries", 1),
            ("grpc.keepalive_time_ms", 30_000),
        ],
        interceptors=grpcauth.aio_interceptors(token) if token else None,
    )
