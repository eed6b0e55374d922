"""What every endpoint of one binding shares, and small request helpers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dtpoc_gateway import backends, catalog, httperrors, pathtemplate, settings, transcode

Endpoint = Callable[[Request], Awaitable[Response]]

JSON_TYPES = ("application/json", "text/json")


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


async def read_json_body(request: Request, *, limit: int) -> Any:
    """The parsed JSON body, ``transcode.NO_BODY`` when empty; 413 over ``limit``."""
    length = declared_length(request)
    if length is not None and length > limit:
        raise too_large(limit)
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data.strip():
        return transcode.NO_BODY
    if media and media not in JSON_TYPES and not media.endswith("+json"):
        raise httperrors.ApiError(415, f"the request body must be application/json, not {media}")
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise httperrors.bad_request("the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise httperrors.bad_request(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
