"""Server-streaming RPCs without a stream handler, served as Server-Sent Events.

Each message becomes one event, ``data: <proto JSON>`` (``response_body``
applies as for unary answers). The gateway waits for the first message
before answering, so a call that fails at once (an unknown id) answers the
usual HTTP error instead of an empty stream. A failure later becomes one
``event: error`` whose data is the standard error body, then the stream
ends. An idle stream carries a ``: keep-alive`` comment every
``sse_keepalive_seconds`` so that proxies keep it open. When the client goes
away the call is cancelled.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dtpoc_common import logging as dlog
from dtpoc_gateway import context

log = dlog.get_logger(__name__)

EVENT_STREAM = "text/event-stream"


def _event(payload: Any, *, kind: str = "") -> bytes:
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    prefix = f"event: {kind}\n" if kind else ""
    return f"{prefix}data: {data}\n\n".encode()


def endpoint(ctx: context.RouteContext) -> context.Endpoint:
    async def handle(request: Request) -> Response:
        message = await context.request_message(ctx, request)
        call, first = await context.open_stream(ctx, request, message)
        return StreamingResponse(
            _events(ctx, request, call=call, first=first),
            media_type=EVENT_STREAM,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return handle


async def _events(
    ctx: context.RouteContext, request: Request, *, call: Any, first: Any
) -> AsyncIterator[bytes]:
    """The stream's messages as events (``first`` already read), keep-alives while it is idle,
    one error event when it fails; the call is cancelled when the client goes away."""
    keepalive = ctx.settings.sse_keepalive_seconds
    pending: asyncio.Future[Any] | None = None
    try:
        if first is grpc.aio.EOF:
            return
        yield _event(ctx.transcoder.render(first))
        while True:
            if pending is None:
                pending = asyncio.ensure_future(call.read())
            done, _ = await asyncio.wait({pending}, timeout=keepalive)
            if not done:
                yield b": keep-alive\n\n"
                continue
            item = pending.result()
            pending = None
            if item is grpc.aio.EOF:
                return
            yield _event(ctx.transcoder.render(item))
    except grpc.aio.AioRpcError as exc:
        error = ctx.backends.error(ctx.method, exc, request_id=context.request_id(request))
        yield _event(error.body(), kind="error")
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
        if not call.done():
            call.cancel()
