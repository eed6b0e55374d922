"""Channels to other dtpoc services, with the same message limits as servers."""

from __future__ import annotations

import grpc

DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def open_channel(
    target: str, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
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
    )
