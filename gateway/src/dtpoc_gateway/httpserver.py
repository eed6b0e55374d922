"""The HTTP/1.1 connection handling: limits so that one client cannot starve others.

Uvicorn's h11 protocol with three additions:

* **header timeout**: a request head that is not complete within
  ``header_timeout_seconds`` of its first byte (a slow-loris client
  dribbling header bytes) gets ``408`` and the connection is closed; the
  keep-alive timeout alone is reset by every byte. A connection that has
  sent nothing yet (new, or kept alive between requests) is idle, not late:
  uvicorn's keep-alive timeout closes it quietly, as between requests.
* **clear refusals**: a request head that h11 refuses answers with the
  gateway's JSON error body: ``431`` when it is larger than
  ``max_header_bytes``, ``400`` for a malformed one (uvicorn answers a
  plain-text 400 for both).
* **lingering close**: after such a refusal the connection stops sending,
  reads and discards what the client still sends for a moment, then closes.
  Closing at once with unread bytes makes the kernel send a reset, and the
  client never reads the answer: the refusal would look like a dropped
  connection.

The server-wide limits (``limit_concurrency``, ``backlog``, the keep-alive
timeout) are uvicorn's own, set from the gateway's settings. Beyond
``limit_concurrency`` uvicorn answers with a fixed ASGI app of its h11
module (``service_unavailable``: plain text); :func:`protocol_class` puts
:func:`overloaded` in its place, so an overloaded gateway answers 503 with
the gateway's JSON body and ``Retry-After`` like its other refusals.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import h11
from uvicorn.protocols.http import h11_impl
from uvicorn.protocols.http.h11_impl import H11Protocol

from dtpoc_common import logging as dlog
from dtpoc_gateway import httperrors

log = dlog.get_logger(__name__)

TOO_LARGE_MESSAGE = (
    "the request head (request line and headers) is larger than this gateway accepts"
)
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    431: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

#: Seconds a refused connection keeps draining the client's bytes before it closes.
LINGER_SECONDS = 2.0
OVERLOADED_MESSAGE = "the gateway is serving as many connections as it takes; try again shortly"
#: Seconds an overloaded gateway asks a client to wait before it tries again.
OVERLOADED_RETRY_AFTER_SECONDS = 1


async def overloaded(scope: Any, receive: Any, send: Any) -> None:
    """The answer beyond ``limit_concurrency``: 503, JSON body, ``Retry-After``, close.

    An ASGI app of uvicorn's shape: it runs instead of the gateway's application
    for a request that arrives while the server is full."""
    del scope, receive
    error = httperrors.ApiError(503, OVERLOADED_MESSAGE, code=grpc.StatusCode.UNAVAILABLE)
    body = json.dumps(error.body(), separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(OVERLOADED_RETRY_AFTER_SECONDS).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _error_bytes(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 error answer with the gateway's body, closing the connection."""
    error = httperrors.ApiError(status, message, code=_CODES[status])
    body = json.dumps(error.body(), separators=(",", ":")).encode()
    reason = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode()
    return head + body


class GuardedH11Protocol(H11Protocol):
    """Uvicorn's h11 protocol with a header timeout and clear refusals (module docs)."""

    header_timeout_seconds: float = 15.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._lingering = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Until its first byte a new connection is idle, as a kept-alive one between
        # requests: closed quietly after the keep-alive timeout. A client on a starved
        # machine may open a connection and send its request seconds later; answering
        # that 408 would fail a request that was never late (the header timer starts
        # with the head's first byte, in data_received).
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        if self._awaiting_head() and self._head_exceeds(data):
            self._refuse(431, TOO_LARGE_MESSAGE)
            return
        super().data_received(data)
        self._watch_head()

    def _head_exceeds(self, data: bytes) -> bool:
        """Whether the request head being received is over the limit (h11 checks only
        heads that arrive in pieces; one that arrives whole passes it)."""
        limit = self.config.h11_max_incomplete_event_size
        if limit is None:
            return False
        buffered = self.conn.trailing_data[0]
        pending = buffered + data if buffered else data
        end = pending.find(b"\r\n\r\n", 0, limit + 4)
        return end < 0 and len(pending) > limit

    def _awaiting_head(self) -> bool:
        return bool(self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE)

    def _watch_head(self) -> None:
        """Run the header timer while a request head is incomplete, stop it after."""
        if self._lingering or self.transport.is_closing() or not self._awaiting_head():
            self._stop_head_timer()
        elif self._head_timer is None and self.timeout_keep_alive_task is None:
            self._head_timer = self.loop.call_later(
                self.header_timeout_seconds, self._head_timed_out
            )

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._awaiting_head() or self.transport.is_closing():
            return
        log.info("request head not complete in time; closing", client=_peer(self.client))
        self._refuse(408, f"the request head did not arrive within {self.header_timeout_seconds} s")

    def send_400_response(self, msg: str) -> None:
        """Called by uvicorn when h11 refuses the request head (size or syntax)."""
        too_large = self._head_too_large()
        status = 431 if too_large else 400
        message = TOO_LARGE_MESSAGE if too_large else "the request is not valid HTTP/1.1"
        log.info("request head refused", client=_peer(self.client), status=status)
        self._refuse(status, message)

    def _head_too_large(self) -> bool:
        limit = self.config.h11_max_incomplete_event_size
        return limit is not None and len(self.conn.trailing_data[0]) > limit

    def _refuse(self, status: int, message: str) -> None:
        self._stop_head_timer()
        self._lingering = True
        self.transport.write(_error_bytes(status, message))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def _peer(client: tuple[str, int] | None) -> str | None:
    return client[0] if client else None


def protocol_class(*, header_timeout_seconds: float) -> type[GuardedH11Protocol]:
    """The protocol class uvicorn instantiates per connection, with the timeout set.

    Also makes uvicorn's h11 protocol answer overload with :func:`overloaded`
    (module docs): that refusal is chosen inside uvicorn's event handling,
    from a name of its module, before any code of the protocol class runs."""
    h11_impl.service_unavailable = overloaded  # type: ignore[attr-defined]
    return type(
        "GatewayH11Protocol",
        (GuardedH11Protocol,),
        {"header_timeout_seconds": header_timeout_seconds},
    )
