"""The gRPC edge: protobuf messages in, use cases called, protobuf messages out.

Nothing here decides anything: validation lives in
:mod:`dtpoc_files.domain`, behaviour in :mod:`dtpoc_files.service`. Errors
are raised as :mod:`dtpoc_common.errors` types and mapped to status codes by
the common server interceptor.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from bson import ObjectId
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc_common import errors
from dtpoc_files import authz, domain, service

SERVICE_NAME = files_pb2.DESCRIPTOR.services_by_name["FilesService"].full_name


class FilesServicer(files_pb2_grpc.FilesServiceServicer):
    """``dtpoc.files.v1alpha1.FilesService`` over :class:`~dtpoc_files.service.FilesService`."""

    def __init__(self, files: service.FilesService, *, authenticated: bool = True) -> None:
        self._files = files
        #: False only on a server explicitly serving every caller (no caller tokens).
        self._authenticated = authenticated

    async def UploadFile(  # noqa: N802 - gRPC method name
        self,
        request_iterator: AsyncIterator[files_pb2.UploadFileRequest],
        context: Any,
    ) -> files_pb2.UploadFileResponse:
        messages = aiter(request_iterator)
        try:
            first = await anext(messages)
        except StopAsyncIteration:
            raise errors.InvalidArgument(
                "the upload stream is empty: send the header first", field="header"
            ) from None
        if first.WhichOneof("payload") != "header":
            raise errors.InvalidArgument(
                "the first message of an upload must carry the header", field="header"
            )
        header = first.header
        parsed = domain.parse_upload_header(
            filename=header.filename,
            content_type=header.content_type,
            metadata=json_format.MessageToDict(header.metadata),
            expected_sha256=header.expected_sha256,
            expected_length=(
                header.expected_length if header.HasField("expected_length") else None
            ),
            max_bytes=self._files.max_upload_bytes,
        )
        authz.check_output_labels(parsed.metadata, authenticated=self._authenticated)
        outcome = await self._files.upload(
            parsed, _content(messages), still_wanted=lambda: not context.cancelled()
        )
        return files_pb2.UploadFileResponse(
            file_id=outcome.record.file_id,
            filename=outcome.record.filename,
            message=domain.ALREADY_EXISTS_MESSAGE if outcome.deduplicated else "",
            deduplicated=outcome.deduplicated,
            file=file_info(outcome.record),
        )

    async def GetFile(  # noqa: N802 - gRPC method name
        self, request: files_pb2.GetFileRequest, context: Any
    ) -> AsyncIterator[files_pb2.GetFileResponse]:
        download = await self._files.download(
            request.file_id, offset=request.offset, length=request.length
        )
        yield files_pb2.GetFileResponse(info=file_info(download.record))
        async for piece in download.pieces:
            yield files_pb2.GetFileResponse(chunk=piece)

    async def GetFileInfo(  # noqa: N802 - gRPC method name
        self, request: files_pb2.GetFileInfoRequest, context: Any
    ) -> files_pb2.GetFileInfoResponse:
        record = await self._files.info(request.file_id)
        return files_pb2.GetFileInfoResponse(file=file_info(record))

    async def ListFiles(  # noqa: N802 - gRPC method name
        self, request: files_pb2.ListFilesRequest, context: Any
    ) -> files_pb2.ListFilesResponse:
        query = domain.parse_list_query(
            skip=request.skip,
            limit=request.limit if request.HasField("limit") else None,
            page_token=request.page_token,
            service_id=request.service_id,
            replica_index=request.replica_index if request.HasField("replica_index") else None,
            filename=request.filename,
        )
        page = await self._files.list(query)
        return files_pb2.ListFilesResponse(
            files=[file_info(record) for record in page.records],
            next_page_token=page.next_page_token,
        )

    async def DeleteFile(  # noqa: N802 - gRPC method name
        self, request: files_pb2.DeleteFileRequest, context: Any
    ) -> files_pb2.DeleteFileResponse:
        outcome = await self._files.delete(request.file_id, force=request.force)
        return files_pb2.DeleteFileResponse(message=outcome.message, deleted=outcome.deleted)

    async def PrepareMount(  # noqa: N802 - gRPC method name
        self, request: files_pb2.PrepareMountRequest, context: Any
    ) -> files_pb2.PrepareMountResponse:
        record = await self._files.prepare_mount(request.file_id)
        return files_pb2.PrepareMountResponse(file=file_info(record))


async def _content(messages: AsyncIterator[files_pb2.UploadFileRequest]) -> AsyncIterator[bytes]:
    """The bytes of the messages after the header, up to the finish message.

    A stream that ends without ``finish`` raises: grpc-python's asyncio server
    ends the request stream normally when the client cancels, so only the
    finish message tells a complete upload from an abandoned one.
    """
    finished = False
    async for message in messages:
        kind = message.WhichOneof("payload")
        if finished:
            raise errors.InvalidArgument(
                "nothing may follow the finish message of an upload", field="finish"
            )
        if kind == "chunk":
            yield message.chunk
        elif kind == "finish":
            finished = message.finish
        elif kind == "header":
            raise errors.InvalidArgument(
                "the header may only be sent once, as the first message", field="header"
            )
    if not finished:
        raise errors.Aborted(
            "the upload stream ended without its finish message; nothing was stored"
        )


def file_info(record: domain.FileRecord) -> files_pb2.FileInfo:
    """A record as the API shows it."""
    upload_date = timestamp_pb2.Timestamp()
    upload_date.FromDatetime(record.upload_date.astimezone(datetime.UTC))
    metadata = struct_pb2.Struct()
    metadata.update(_jsonable_mapping(record.metadata))
    return files_pb2.FileInfo(
        file_id=record.file_id,
        filename=record.filename,
        length=record.length,
        uploadDate=upload_date,
        metadata=metadata,
        sha256=record.sha256,
        content_type=record.content_type,
    )


def _jsonable_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key): _jsonable(value) for key, value in values.items()}


def _jsonable(value: Any) -> Any:
    """Metadata values Struct can carry; files written by other tools may hold BSON types."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return _jsonable_mapping(value)
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, ObjectId | uuid.UUID | decimal.Decimal):
        return str(value)
    return str(value)
