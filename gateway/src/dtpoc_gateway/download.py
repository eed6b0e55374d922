"""``http_stream_handler: "byte_download"``: a server stream of chunks as raw bytes.

The stream's first message carries the file's record (its message field),
the following ones its bytes (its bytes field). The answer streams those
bytes with ``Content-Length``, ``Content-Type`` (the stored type, else
``application/octet-stream``), ``Content-Disposition: attachment`` with an
ASCII fallback name and an RFC 5987 ``filename*`` for any other name,
``Accept-Ranges: bytes`` and ``ETag`` (the SHA-256 when the record has one).

``Range: bytes=a-b``, ``bytes=a-`` and ``bytes=-n`` answer 206 with
``Content-Range``; a range that starts past the end answers 416 with
``Content-Range: bytes */size``. Several ranges, or a header that does not
parse, are ignored (RFC 9110 lets a server send the whole file). The
request's ``offset`` / ``length`` fields, when the query sets them, are
treated as a range too. The backend is asked from the range's first byte,
and the gateway stops reading once the range is sent, so no server-side
notion of "length" past the end matters.

A failure before the first byte answers the mapped HTTP error; after the
headers are sent it can only cut the connection, which the client sees as
a body shorter than ``Content-Length``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import grpc
from google.protobuf import descriptor, message
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dtpoc_common import logging as dlog
from dtpoc_gateway import catalog, context, httperrors, transcode

log = dlog.get_logger(__name__)

FD = descriptor.FieldDescriptor
OCTET_STREAM = "application/octet-stream"
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
#: A position no file reaches (files are far below 2^62 bytes); fits an int64 field.
BEYOND_ANY_FILE = 2**62
MAX_MEDIA_TYPE = 255
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAMETER = rf'\s*;\s*{_TCHARS}=(?:{_TCHARS}|"[\x20\x21\x23-\x5b\x5d-\x7e]*")'
_MEDIA_TYPE = re.compile(rf"{_TCHARS}/{_TCHARS}(?:{_PARAMETER})*", re.ASCII)


@dataclass(frozen=True)
class _Shape:
    info_field: str
    chunk_field: str
    offset_field: str | None
    length_field: str | None


def shape(method: catalog.Method) -> _Shape:
    response = method.descriptor.output_type
    byte_fields = [f for f in response.fields if f.type == FD.TYPE_BYTES]
    message_fields = [f for f in response.fields if f.type == FD.TYPE_MESSAGE]
    if (
        not method.server_streaming
        or method.client_streaming
        or len(byte_fields) != 1
        or len(message_fields) != 1
    ):
        raise catalog.CatalogError(
            f"{method.full_name}: byte_download needs a server-streaming response with one "
            "bytes field (chunks) and one message field (the file's record)"
        )
    request_fields = method.descriptor.input_type.fields_by_name
    return _Shape(
        info_field=message_fields[0].name,
        chunk_field=byte_fields[0].name,
        offset_field="offset" if "offset" in request_fields else None,
        length_field="length" if "length" in request_fields else None,
    )


def parse_range(header: str | None) -> tuple[int | None, int | None] | None:
    """``(first, last)`` of a single byte range; ``(None, n)`` for the last n bytes.

    None when there is no header, several ranges or a syntax error: the
    whole file is sent then.
    """
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    first = _position(first_text) if first_text else None
    last = _position(last_text) if last_text else None
    if first is not None and last is not None and last < first:
        return None
    return first, last


def _position(digits: str) -> int:
    """A byte position; any number past every file's size reads as :data:`BEYOND_ANY_FILE`."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) < len(str(BEYOND_ANY_FILE)) else BEYOND_ANY_FILE


def safe_media_type(stored: str) -> str:
    """The stored content type when it is a well-formed media type, else octet-stream.

    The type comes from whoever stored the file (a browser's part header, a
    replica's output); one that is not ``type/subtype[; name=value]`` in
    plain ASCII cannot be sent as a header and says nothing useful anyway.
    """
    value = stored.strip()
    if not value or len(value) > MAX_MEDIA_TYPE or not _MEDIA_TYPE.fullmatch(value):
        return OCTET_STREAM
    return value


def resolve_range(wanted: tuple[int | None, int | None], size: int) -> tuple[int, int] | None:
    """The satisfiable ``(first, last)`` within ``size`` bytes, None when unsatisfiable."""
    first, last = wanted
    if first is None:
        count = last or 0
        if count == 0 or size == 0:
            return None
        return max(0, size - count), size - 1
    if first >= size:
        return None
    return first, size - 1 if last is None else min(last, size - 1)


def content_disposition(filename: str) -> str:
    """``attachment`` with a safe ASCII ``filename`` and, if needed, ``filename*`` (RFC 6266)."""
    name = "".join(ch for ch in filename if ch >= " " and ch != "\x7f")
    name = name.replace("/", "_").replace("\\", "_").strip() or "download"
    fallback = "".join(ch if " " <= ch <= "~" and ch not in '"%' else "_" for ch in name)
    value = f'attachment; filename="{fallback}"'
    if fallback != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


def endpoint(ctx: context.RouteContext) -> context.Endpoint:
    """The handler of one download route (its response's shape is checked here, at start-up)."""
    fields = shape(ctx.method)

    async def handle(request: Request) -> Response:
        item, wanted = _requested(ctx, request, fields)
        start = wanted[0] if wanted is not None and wanted[0] and fields.offset_field else 0
        stream = await _open_at(ctx, request, item, fields, offset=start)
        size = int(getattr(stream.info, "length", 0))
        stream, first_byte, last_byte = await _in_range(
            ctx, request, item, fields, stream=stream, wanted=wanted, size=size
        )
        count = max(0, last_byte - first_byte + 1)
        headers = _headers(stream.info, count=count)
        status = 200
        if wanted is not None:
            status = 206
            headers["Content-Range"] = f"bytes {first_byte}-{last_byte}/{size}"
        media_type = safe_media_type(str(getattr(stream.info, "content_type", "")))
        if request.method == "HEAD":
            stream.call.cancel()
            return Response(status_code=status, headers=headers, media_type=media_type)
        body = _bytes(
            stream.call, count, skip=first_byte - stream.offset, fields=fields, method=ctx.method
        )
        return StreamingResponse(body, status_code=status, headers=headers, media_type=media_type)

    return handle


@dataclass(frozen=True)
class _Stream:
    """The backend stream once open: its call, the file's record and the byte it starts at."""

    call: Any
    info: Any
    offset: int


def _requested(
    ctx: context.RouteContext, request: Request, fields: _Shape
) -> tuple[message.Message, tuple[int | None, int | None] | None]:
    """The request message (its offset/length cleared) and the range asked for, if any.

    The query's ``offset``/``length`` win over a ``Range`` header.
    """
    item = ctx.transcoder.build(
        request.path_params, request.query_params.multi_items(), transcode.NO_BODY
    )
    wanted = _query_range(item, fields)
    if wanted is None:
        wanted = parse_range(request.headers.get("range"))
    if fields.offset_field:
        item.ClearField(fields.offset_field)
    if fields.length_field:
        item.ClearField(fields.length_field)
    return item, wanted


async def _open_at(
    ctx: context.RouteContext,
    request: Request,
    item: message.Message,
    fields: _Shape,
    *,
    offset: int,
) -> _Stream:
    """Open the stream at ``offset``; when refused there, at the start instead.

    A backend may refuse an offset past the end; asking again from the start
    learns the size, so the answer can be a proper 416.
    """
    if offset and fields.offset_field:
        setattr(item, fields.offset_field, offset)
    try:
        call, info = await _first(ctx, request, item, fields)
    except httperrors.ApiError as error:
        if not offset or error.http_status not in (400, 416) or not fields.offset_field:
            raise
        item.ClearField(fields.offset_field)
        call, info = await _first(ctx, request, item, fields)
        offset = 0
    return _Stream(call=call, info=info, offset=offset)


async def _in_range(
    ctx: context.RouteContext,
    request: Request,
    item: message.Message,
    fields: _Shape,
    *,
    stream: _Stream,
    wanted: tuple[int | None, int | None] | None,
    size: int,
) -> tuple[_Stream, int, int]:
    """The first and last byte to send (416 when none can be), and the stream to read them from.

    A suffix range is known only once the size is: the stream is then opened
    again at its first byte.
    """
    if wanted is None:
        return stream, 0, size - 1
    resolved = resolve_range(wanted, size)
    if resolved is None:
        stream.call.cancel()
        raise httperrors.ApiError(
            416,
            f"range {request.headers.get('range') or wanted} is not satisfiable for {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )
    first_byte, last_byte = resolved
    if first_byte != stream.offset and fields.offset_field:
        stream.call.cancel()
        setattr(item, fields.offset_field, first_byte)
        call, info = await _first(ctx, request, item, fields)
        stream = _Stream(call=call, info=info, offset=first_byte)
    return stream, first_byte, last_byte


def _headers(info: Any, *, count: int) -> dict[str, str]:
    """The answer's headers from the file's record (Content-Range aside)."""
    headers = {
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
        "Content-Length": str(count),
        "Content-Disposition": content_disposition(str(getattr(info, "filename", ""))),
    }
    sha256 = str(getattr(info, "sha256", ""))
    if sha256:
        headers["ETag"] = f'"{sha256}"'
    return headers


def _query_range(item: message.Message, fields: _Shape) -> tuple[int | None, int | None] | None:
    offset = int(getattr(item, fields.offset_field)) if fields.offset_field else 0
    length = int(getattr(item, fields.length_field)) if fields.length_field else 0
    if offset < 0 or length < 0:
        raise httperrors.bad_request("offset and length must not be negative")
    if not offset and not length:
        return None
    return offset, (offset + length - 1) if length else None


async def _first(
    ctx: context.RouteContext, request: Request, item: message.Message, fields: _Shape
) -> tuple[Any, Any]:
    """Start the stream and read the record it opens with."""
    method = ctx.method
    call = ctx.backends.callable(method)(
        item, timeout=ctx.settings.stream_timeout_seconds, metadata=context.call_metadata(request)
    )
    try:
        first = await call.read()
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
            raise httperrors.ApiError(416, "range not satisfiable") from None
        raise ctx.backends.error(method, exc, request_id=context.request_id(request)) from None
    if first is grpc.aio.EOF or not first.HasField(fields.info_field):
        call.cancel()
        raise httperrors.ApiError(502, "the backend stream did not start with the file's record")
    return call, getattr(first, fields.info_field)


async def _bytes(
    call: Any, count: int, *, skip: int, fields: _Shape, method: catalog.Method
) -> AsyncIterator[bytes]:
    """``count`` bytes of the stream after skipping ``skip`` (when the backend cannot seek)."""
    remaining = count
    try:
        while remaining > 0:
            try:
                item = await call.read()
            except grpc.aio.AioRpcError as exc:
                raise httperrors.stream_aborted(
                    "download", exc, method=method.grpc_path, missing_bytes=remaining
                ) from None
            if item is grpc.aio.EOF:
                log.warning(
                    "download stream ended early", method=method.grpc_path, missing_bytes=remaining
                )
                raise httperrors.StreamAborted("stream ended early")
            data = getattr(item, fields.chunk_field)
            if skip:
                dropped = min(skip, len(data))
                data = data[dropped:]
                skip -= dropped
            if not data:
                continue
            if len(data) > remaining:
                data = data[:remaining]
            remaining -= len(data)
            yield data
    finally:
        if not call.done():
            call.cancel()
