"""``http_stream_handler: "multipart_upload"``: a multipart form into a client stream.

The body is parsed incrementally with python-multipart's streaming parser
as it arrives from ``request.stream()``; the part named ``file`` is sent to
the client-streaming RPC as a header message (file name and content type of
the part, plus any query parameters naming header fields, e.g.
``?expected_sha256=...``) followed by chunk messages of
``upload_chunk_bytes``. Nothing is buffered beyond one chunk and what the
socket delivered: the body never sits whole in memory or on disk, and
``call.write`` waits for gRPC flow control, so a slow backend slows the
client instead of filling the gateway's memory.

A body over ``max_upload_bytes`` answers 413 (at once when Content-Length
says so); a form without a ``file`` part, a second ``file`` part or a broken
multipart body answers 400, and the call is cancelled so the backend keeps
nothing. The answer is the original's ``{"file_id", "filename"}``, plus
``"message"`` when the content was already stored.

The handler finds its fields by shape, not by name: the request message's
only bytes field carries chunks, its only message field the header, and its
only bool field, when there is one, the finish mark sent after the last
chunk (a stream cut short without it stores nothing).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor, message
from python_multipart import multipart
from python_multipart.exceptions import FormParserError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from dtpoc_gateway import catalog, context, httperrors, transcode

FD = descriptor.FieldDescriptor
FILE_PART = "file"
#: RFC 2046: 1 to 70 characters of these, the last not a space.
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


@dataclass
class _Shape:
    chunk_field: str
    header_field: str
    header_class: type[message.Message]
    finish_field: str | None


def shape(method: catalog.Method) -> _Shape:
    """The chunk and header fields of an upload request; CatalogError when absent."""
    request = method.descriptor.input_type
    byte_fields = [f for f in request.fields if f.type == FD.TYPE_BYTES]
    message_fields = [
        f for f in request.fields if f.type == FD.TYPE_MESSAGE and not transcode.is_repeated(f)
    ]
    if not method.client_streaming or len(byte_fields) != 1 or len(message_fields) != 1:
        raise catalog.CatalogError(
            f"{method.full_name}: multipart_upload needs a client-streaming request with one "
            "bytes field (chunks) and one message field (the header)"
        )
    header_class = type(getattr(method.request_class(), message_fields[0].name))
    bool_fields = [f for f in request.fields if f.type == FD.TYPE_BOOL]
    return _Shape(
        chunk_field=byte_fields[0].name,
        header_field=message_fields[0].name,
        header_class=header_class,
        finish_field=bool_fields[0].name if len(bool_fields) == 1 else None,
    )


@dataclass
class _Form:
    """Callback state of the streaming multipart parser."""

    header_name: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[str, bytes] = field(default_factory=dict)
    in_file: bool = False
    file_started: bool = False
    file_done: bool = False
    filename: str = ""
    content_type: str = ""
    buffer: bytearray = field(default_factory=bytearray)
    error: str = ""

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.headers = {}
        self.in_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_name.decode("latin-1").lower()] = bytes(self.header_value)
        self.header_name.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        disposition = self.headers.get("content-disposition", b"").decode("latin-1")
        _, options = multipart.parse_options_header(disposition)
        if options.get(b"name", b"").decode("latin-1") != FILE_PART:
            return
        if self.file_started:
            self.error = f"the form has more than one part named {FILE_PART!r}"
            return
        self.in_file = True
        self.file_started = True
        self.filename = _plain_name(_text(options.get(b"filename", b"")))
        content_type = self.headers.get("content-type", b"").decode("latin-1").strip()
        self.content_type = content_type

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.buffer += data[start:end]

    def on_part_end(self) -> None:
        if self.in_file:
            self.file_done = True
        self.in_file = False


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _plain_name(name: str) -> str:
    """Browsers on some systems send a full path; keep the last component."""
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def _lost_status(error: grpc.aio.AioRpcError) -> bool:
    """grpc.aio replaces the server's status with this when a write meets a closed call."""
    return bool(
        error.code() == grpc.StatusCode.INTERNAL
        and (error.details() or "") == "Internal error from Core"
    )


def _fill(header: message.Message, name: str, value: str) -> None:
    """Set a header field from the part unless the query string set it already."""
    if value and name in header.DESCRIPTOR.fields_by_name and not getattr(header, name):
        setattr(header, name, value)


def endpoint(ctx: context.RouteContext) -> context.Endpoint:
    method = ctx.method
    fields = shape(method)
    limit = ctx.settings.max_upload_bytes
    idle = ctx.settings.upload_idle_seconds
    chunk_size = ctx.settings.upload_chunk_bytes
    timeout = ctx.settings.stream_timeout_seconds
    request_class = method.request_class

    async def send(call: Any, item: message.Message, *, header: message.Message) -> None:
        try:
            await call.write(item)
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
            # The backend ended the call early: it refused the upload, and its status says
            # why, unless the failed write replaced that status with a local INTERNAL.
            try:
                await call
            except grpc.aio.AioRpcError as exc:
                if not _lost_status(exc):
                    raise
                await _replay_header(call_factory(), header)
            raise httperrors.ApiError(
                502, "the backend ended the upload before it was complete"
            ) from None

    async def _replay_header(call: Any, header: message.Message) -> None:
        """Send the header alone, without ``finish`` (so nothing is stored), to learn the
        backend's refusal; raises its AioRpcError."""
        try:
            await call.write(request_class(**{fields.header_field: header}))
            await call.done_writing()
            await call
        finally:
            if not call.done():
                call.cancel()

    def call_factory() -> Any:
        return ctx.backends.callable(method)(timeout=ctx.settings.call_timeout_seconds)

    async def handle(request: Request) -> Response:
        media, params = multipart.parse_options_header(request.headers.get("content-type"))
        if media != b"multipart/form-data":
            raise httperrors.ApiError(
                415, f"the request body must be multipart/form-data with a part named {FILE_PART!r}"
            )
        boundary = params.get(b"boundary")
        if not boundary:
            raise httperrors.bad_request("the multipart Content-Type has no boundary")
        if not _BOUNDARY.fullmatch(boundary):
            raise httperrors.bad_request(
                "the multipart boundary must be 1 to 70 letters, digits or '()+_,-./:=? (RFC 2046)"
            )
        length = context.declared_length(request)
        if length is not None and length > limit:
            raise context.too_large(limit)
        header = fields.header_class()
        ctx.transcoder.query_into(header, request.query_params.multi_items())
        form = _Form()
        parser = multipart.MultipartParser(boundary, callbacks=form.callbacks())
        call: Any = None
        received = 0
        finished = False
        try:
            async for data in context.stream_within(request, idle_seconds=idle):
                received += len(data)
                if received > limit:
                    raise context.too_large(limit)
                parser.write(data)
                if form.error:
                    raise httperrors.bad_request(form.error)
                if form.file_started and call is None:
                    _fill(header, "filename", form.filename)
                    _fill(header, "content_type", form.content_type)
                    call = ctx.backends.callable(method)(
                        timeout=timeout, metadata=context.call_metadata(request)
                    )
                    await send(call, request_class(**{fields.header_field: header}), header=header)
                while call is not None and len(form.buffer) >= chunk_size:
                    piece = bytes(form.buffer[:chunk_size])
                    del form.buffer[:chunk_size]
                    await send(call, request_class(**{fields.chunk_field: piece}), header=header)
            parser.finalize()
            if not form.file_done or call is None:
                raise httperrors.bad_request(
                    f"the form has no complete part named {FILE_PART!r}", field=FILE_PART
                )
            if form.buffer:
                await send(
                    call, request_class(**{fields.chunk_field: bytes(form.buffer)}), header=header
                )
                form.buffer.clear()
            if fields.finish_field is not None:
                await send(call, request_class(**{fields.finish_field: True}), header=header)
            await call.done_writing()
            response = await call
            finished = True
        except grpc.aio.AioRpcError as exc:
            raise ctx.backends.error(method, exc, request_id=context.request_id(request)) from None
        except FormParserError as exc:
            raise httperrors.bad_request(f"the multipart body is malformed: {exc}") from None
        except ClientDisconnect:
            raise httperrors.ApiError(499, "the client closed the upload before its end") from None
        finally:
            if call is not None and not finished and not call.done():
                # Without the finish message the backend stores nothing.
                call.cancel()
        full = transcode.to_json(response)
        answer = {key: full[key] for key in ("file_id", "filename") if key in full}
        if full.get("message"):
            answer["message"] = full["message"]
        return httperrors.json_response(answer, status_code=method.success_code)

    return handle
