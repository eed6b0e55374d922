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


def _boundary(request: Request) -> bytes:
    """The multipart boundary of the request's Content-Type; 415 or 400 when there is none."""
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
    return bytes(boundary)


def _answer(response: message.Message) -> dict[str, Any]:
    """The original's ``{"file_id", "filename"}``, plus ``"message"`` when it has one."""
    full = transcode.to_json(response)
    answer = {key: full[key] for key in ("file_id", "filename") if key in full}
    if full.get("message"):
        answer["message"] = full["message"]
    return answer


@dataclass(frozen=True)
class _Route:
    """What every upload to one method shares: the route, its request's shape, the limits."""

    ctx: context.RouteContext
    fields: _Shape

    @property
    def method(self) -> catalog.Method:
        return self.ctx.method

    async def handle(self, request: Request) -> Response:
        """Parse the Content-Type, check the size, stream the file part, answer."""
        boundary = _boundary(request)
        limit = self.ctx.settings.max_upload_bytes
        length = context.declared_length(request)
        if length is not None and length > limit:
            raise context.too_large(limit)
        header = self.fields.header_class()
        self.ctx.transcoder.query_into(header, request.query_params.multi_items())
        response = await _Upload(self, request, boundary=boundary, header=header).run()
        return httperrors.json_response(_answer(response), status_code=self.method.success_code)

    def request(self, **field: Any) -> message.Message:
        return self.method.request_class(**field)

    def open_call(self, request: Request | None = None) -> Any:
        """A new upload call: with the caller's metadata, or (``None``) a bare probe call."""
        backend = self.ctx.backends.callable(self.method)
        if request is None:
            return backend(timeout=self.ctx.settings.call_timeout_seconds)
        return backend(
            timeout=self.ctx.settings.stream_timeout_seconds,
            metadata=context.call_metadata(request),
        )


class _Upload:
    """One request's transfer: the multipart parser's state and the backend call once opened."""

    def __init__(
        self, route: _Route, request: Request, *, boundary: bytes, header: message.Message
    ) -> None:
        self.route = route
        self.request = request
        self.header = header
        self.form = _Form()
        self.parser = multipart.MultipartParser(boundary, callbacks=self.form.callbacks())
        self.call: Any = None

    async def run(self) -> message.Message:
        """Stream the body into the call and return the backend's answer, as HTTP errors."""
        finished = False
        try:
            await self._receive()
            await self._finish()
            response: message.Message = await self.call
            finished = True
            return response
        except grpc.aio.AioRpcError as exc:
            request_id = context.request_id(self.request)
            raise self.route.ctx.backends.error(
                self.route.method, exc, request_id=request_id
            ) from None
        except FormParserError as exc:
            raise httperrors.bad_request(f"the multipart body is malformed: {exc}") from None
        except ClientDisconnect:
            raise httperrors.ApiError(499, "the client closed the upload before its end") from None
        finally:
            if self.call is not None and not finished and not self.call.done():
                # Without the finish message the backend stores nothing.
                self.call.cancel()

    async def _receive(self) -> None:
        """Feed the body to the parser; open the call at the file part, send full chunks."""
        settings = self.route.ctx.settings
        limit = settings.max_upload_bytes
        received = 0
        async for data in context.stream_within(
            self.request, idle_seconds=settings.upload_idle_seconds
        ):
            received += len(data)
            if received > limit:
                raise context.too_large(limit)
            self.parser.write(data)
            if self.form.error:
                raise httperrors.bad_request(self.form.error)
            if self.form.file_started and self.call is None:
                await self._open()
            chunk_size = settings.upload_chunk_bytes
            while self.call is not None and len(self.form.buffer) >= chunk_size:
                piece = bytes(self.form.buffer[:chunk_size])
                del self.form.buffer[:chunk_size]
                await self._send(**{self.route.fields.chunk_field: piece})
        self.parser.finalize()

    async def _open(self) -> None:
        """The file part began: complete the header from the part and send it first."""
        _fill(self.header, "filename", self.form.filename)
        _fill(self.header, "content_type", self.form.content_type)
        self.call = self.route.open_call(self.request)
        await self._send(**{self.route.fields.header_field: self.header})

    async def _finish(self) -> None:
        """The body ended: send what is left, then the finish mark, and close the writing side."""
        if not self.form.file_done or self.call is None:
            raise httperrors.bad_request(
                f"the form has no complete part named {FILE_PART!r}", field=FILE_PART
            )
        if self.form.buffer:
            await self._send(**{self.route.fields.chunk_field: bytes(self.form.buffer)})
            self.form.buffer.clear()
        if self.route.fields.finish_field is not None:
            await self._send(**{self.route.fields.finish_field: True})
        await self.call.done_writing()

    async def _send(self, **field: Any) -> None:
        """Write one message; when the backend ended the call, raise its refusal (or 502)."""
        try:
            await self.call.write(self.route.request(**field))
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
            # The backend ended the call early: it refused the upload, and its status says
            # why, unless the failed write replaced that status with a local INTERNAL.
            try:
                await self.call
            except grpc.aio.AioRpcError as exc:
                if not _lost_status(exc):
                    raise
                await self._replay_header()
            raise httperrors.ApiError(
                502, "the backend ended the upload before it was complete"
            ) from None

    async def _replay_header(self) -> None:
        """Send the header alone on a new call, without ``finish`` (so nothing is stored), to
        learn the backend's refusal; raises its AioRpcError."""
        call = self.route.open_call()
        try:
            await call.write(self.route.request(**{self.route.fields.header_field: self.header}))
            await call.done_writing()
            await call
        finally:
            if not call.done():
                call.cancel()


def endpoint(ctx: context.RouteContext) -> context.Endpoint:
    """The handler of one upload route (its request's shape is checked here, at start-up)."""
    return _Route(ctx, shape(ctx.method)).handle
