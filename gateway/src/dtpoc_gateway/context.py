"""What every endpoint of one binding shares, and small request helpers."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message
from starlette.requests import Request
from starlette.responses import Response

from dtpoc_gateway import backends, catalog, httperrors, pathtemplate, settings, transcode

Endpoint = Callable[[Request], Awaitable[Response]]

JSON_TYPES = ("application/json", "text/json")
#: Deepest nesting of arrays and objects in a request body: every message of
#: the API is far shallower, and a recursive parser must never meet more.
MAX_JSON_DEPTH = 32
#: Most digits of a JSON integer: any field of the API holds 20 at most (2^64).
MAX_JSON_INTEGER_DIGITS = 40


@dataclass(frozen=True)
class RouteContext:
    """One binding of one method, ready to serve."""

    method: catalog.Method
    binding: catalog.Binding
    template: pathtemplate.PathTemplate
    transcoder: transcode.Transcoder
    backends: backends.Backends
    settings: settings.GatewaySettings


def request_id(request: Request) -> str:
    """The id the access log gave this request (forwarded to backends)."""
    return str(request.scope.get("dtpoc.request_id", ""))


def call_metadata(request: Request) -> tuple[tuple[str, str], ...]:
    rid = request_id(request)
    return (("x-request-id", rid),) if rid else ()


def declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise httperrors.bad_request("Content-Length is not a number") from None
    if length < 0:
        raise httperrors.bad_request("Content-Length is negative")
    return length


def too_large(limit: int) -> httperrors.ApiError:
    return httperrors.ApiError(413, f"request body exceeds the limit of {limit} bytes")


class _NotPlainJson(ValueError):
    """A number or constant that no field of the API can hold."""


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_INTEGER_DIGITS:
        raise _NotPlainJson(f"the number {text[:24]}... has more than 40 digits")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotPlainJson(f"the number {text[:24]} is beyond the range of a double")
    return value


def _no_constant(name: str) -> Any:
    raise _NotPlainJson(f"{name} is not a JSON value")


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def too_deep(data: bytes, *, limit: int) -> bool:
    """Whether arrays and objects nest deeper than ``limit`` (strings do not count).

    Checked on the text before parsing, so that a deep body never reaches a
    recursive parser: each pass removes the innermost empty pairs.
    """
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKET)
    for _ in range(limit):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"").replace(b"{}", b"")
    if not brackets:
        return False
    # Left over after `limit` passes: deeper, unless the brackets do not pair at all.
    shorter = brackets.replace(b"[]", b"").replace(b"{}", b"")
    return len(shorter) < len(brackets)


def parse_json(data: bytes, *, max_depth: int) -> Any:
    """Parse a JSON body; 400 for anything the API's messages cannot hold."""
    if too_deep(data, limit=max_depth):
        raise httperrors.bad_request(f"the request body nests deeper than {max_depth} levels")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise httperrors.bad_request("the request body is not UTF-8 text") from None
    try:
        return json.loads(
            text,
            parse_int=_bounded_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
        )
    except _NotPlainJson as exc:
        raise httperrors.bad_request(f"the request body is not usable JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise httperrors.bad_request(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise httperrors.bad_request(
            f"the request body nests deeper than {max_depth} levels"
        ) from None


def body_timed_out(seconds: float) -> httperrors.ApiError:
    return httperrors.ApiError(
        408,
        f"the request body did not arrive within {seconds:g} s",
        code=grpc.StatusCode.DEADLINE_EXCEEDED,
        # The rest of the body may never come: the connection cannot serve another request.
        headers={"Connection": "close"},
    )


async def stream_within(request: Request, *, idle_seconds: float) -> AsyncIterator[bytes]:
    """The body's chunks; 408 when none arrives for ``idle_seconds`` (a client that
    dribbles its body must not hold a request slot for ever)."""
    chunks = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle_seconds):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise body_timed_out(idle_seconds) from None
        yield chunk


async def read_json_body(
    request: Request, *, limit: int, within_seconds: float, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """The parsed JSON body, ``transcode.NO_BODY`` when empty; 413 over ``limit``, 408
    when it takes longer than ``within_seconds`` to arrive."""
    length = declared_length(request)
    if length is not None and length > limit:
        raise too_large(limit)
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(within_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise body_timed_out(within_seconds) from None
    data = b"".join(chunks)
    if not data.strip():
        return transcode.NO_BODY
    if media and media not in JSON_TYPES and not media.endswith("+json"):
        raise httperrors.ApiError(415, f"the request body must be application/json, not {media}")
    return parse_json(data, max_depth=max_depth)


async def open_stream(
    ctx: RouteContext, request: Request, message: message.Message
) -> tuple[Any, Any]:
    """Start a server-streaming call and read its first message (``grpc.aio.EOF``
    for an empty stream), so that a call failing at once answers the usual HTTP
    error rather than an empty body; cancelled if the client goes away meanwhile."""
    call = ctx.backends.callable(ctx.method)(
        message,
        timeout=ctx.settings.stream_timeout_seconds,
        metadata=call_metadata(request),
    )
    try:
        first = await call.read()
    except grpc.aio.AioRpcError as exc:
        raise ctx.backends.error(ctx.method, exc, request_id=request_id(request)) from None
    except asyncio.CancelledError:
        call.cancel()
        raise
    return call, first


async def request_message(ctx: RouteContext, request: Request) -> message.Message:
    """The RPC's request message from the path, the query and (when the binding takes one) the
    JSON body, within the body's size and time limits."""
    body = (
        await read_json_body(
            request,
            limit=ctx.settings.max_json_body_bytes,
            within_seconds=ctx.settings.body_timeout_seconds,
        )
        if ctx.binding.body
        else transcode.NO_BODY
    )
    return ctx.transcoder.build(request.path_params, request.query_params.multi_items(), body)
