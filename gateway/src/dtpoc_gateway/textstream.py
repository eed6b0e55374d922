"""``http_stream_handler: "text_stream"``: a server stream answered as plain text.

The binding's ``response_body`` names a string field; the answer is
``text/plain; charset=utf-8``, that field of every message in turn, streamed
as the messages arrive. When the request message has a bool field
``follow`` and the request sets it, the answer is Server-Sent Events of the
whole messages instead (as :mod:`dtpoc_gateway.sse` serves any server
stream), so a client can tell each piece's other fields.

The gateway waits for the first message before answering, so a call that
fails at once answers the usual HTTP error. A failure after that can only
cut the connection (the headers are sent; a body that ended cleanly would
pass for the whole text); the gateway logs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import descriptor
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dtpoc_gateway import catalog, context, httperrors, sse, transcode

FD = descriptor.FieldDescriptor
PLAIN_TEXT = "text/plain; charset=utf-8"
FOLLOW_FIELD = "follow"


def _check_shape(ctx: context.RouteContext) -> str:
    """The text field's name; CatalogError at start for a method this cannot serve."""
    method = ctx.method
    response = method.descriptor.output_type
    field = response.fields_by_name.get(ctx.binding.response_body)
    if (
        not method.server_streaming
        or method.client_streaming
        or field is None
        or field.type != FD.TYPE_STRING
        or transcode.is_repeated(field)
    ):
        raise catalog.CatalogError(
            f"{method.full_name}: text_stream needs a server-streaming response and a "
            "response_body naming one of its string fields"
        )
    follow = method.descriptor.input_type.fields_by_name.get(FOLLOW_FIELD)
    if follow is not None and follow.type != FD.TYPE_BOOL:
        raise catalog.CatalogError(f"{method.full_name}: text_stream's 'follow' must be a bool")
    return field.name


async def _texts(
    call: Any, first: Any, *, field: str, method: catalog.Method, request: Request
) -> AsyncIterator[bytes]:
    """The text field of each message, from ``first`` on."""
    item = first
    try:
        while item is not grpc.aio.EOF:
            text = getattr(item, field)
            if text:
                yield text.encode()
            item = await call.read()
    except grpc.aio.AioRpcError as exc:
        raise httperrors.stream_aborted(
            "text", exc, method=method.grpc_path, request_id=context.request_id(request)
        ) from None
    finally:
        if not call.done():
            call.cancel()


def endpoint(ctx: context.RouteContext) -> context.Endpoint:
    text_field = _check_shape(ctx)
    whole = dataclasses.replace(ctx.binding, response_body="")
    events = sse.endpoint(
        dataclasses.replace(
            ctx,
            binding=whole,
            transcoder=transcode.Transcoder(
                method=ctx.method,
                binding=whole,
                template=ctx.template,
                reject_unknown_query=ctx.transcoder.reject_unknown_query,
            ),
        )
    )
    method = ctx.method

    async def handle(request: Request) -> Response:
        message = ctx.transcoder.build(
            request.path_params, request.query_params.multi_items(), transcode.NO_BODY
        )
        if getattr(message, FOLLOW_FIELD, False) is True:
            return await events(request)
        call, first = await context.open_stream(ctx, request, message)
        return StreamingResponse(
            _texts(call, first, field=text_field, method=method, request=request),
            media_type=PLAIN_TEXT,
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    return handle
