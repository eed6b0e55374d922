"""The generic endpoint of a unary RPC: JSON in, one call, JSON out."""

from __future__ import annotations

import grpc
from starlette.requests import Request
from starlette.responses import Response

from dtpoc_gateway import context, httperrors


def endpoint(ctx: context.RouteContext) -> context.Endpoint:
    method = ctx.method
    timeout = ctx.settings.call_timeout_seconds
    success = method.success_code

    async def handle(request: Request) -> Response:
        message = await context.request_message(ctx, request)
        call = ctx.backends.callable(method)
        try:
            response = await call(message, timeout=timeout, metadata=context.call_metadata(request))
        except grpc.aio.AioRpcError as exc:
            raise ctx.backends.error(method, exc, request_id=context.request_id(request)) from None
        return httperrors.json_response(ctx.transcoder.render(response), status_code=success)

    return handle
