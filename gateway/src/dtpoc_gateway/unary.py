"""The generic endpoint of a unary RPC: JSON in, one call, JSON out."""

from __future__ import annotations

import grpc
from starlette.requests import Request
from starlette.responses import Response

from dtpoc_gateway import context, httperrors, transcode


def endpoint(ctx: context.RouteContext) -> context.Endpoint:
    method = ctx.method
    transcoder = ctx.transcoder
    timeout = ctx.settings.call_timeout_seconds
    limit = ctx.settings.max_json_body_bytes
    body_timeout = ctx.settings.body_timeout_seconds
    takes_body = bool(ctx.binding.body)
    success = method.success_code

    async def handle(request: Request) -> Response:
        body = (
            await context.read_json_body(request, limit=limit, within_seconds=body_timeout)
            if takes_body
            else transcode.NO_BODY
        )
        message = transcoder.build(request.path_params, request.query_params.multi_items(), body)
        call = ctx.backends.callable(method)
        try:
            response = await call(message, timeout=timeout, metadata=context.call_metadata(request))
        except grpc.aio.AioRpcError as exc:
            raise ctx.backends.error(method, exc, request_id=context.request_id(request)) from None
        return httperrors.json_response(transcoder.render(response), status_code=success)

    return handle
