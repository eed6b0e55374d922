"""Small gRPC client helpers the Files tests share: upload, download, list."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import struct_pb2

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc_common import grpcauth
from dtpoc_local.credentials import credentials

MIB = 1024 * 1024
#: Enough for a slow shared machine; calls never wait forever.
CALL_TIMEOUT = 120.0


def channel(address: str, *, as_: str | None = grpcauth.GATEWAY) -> grpc.Channel:
    """A channel to Files presenting ``as_``'s token (the gateway's: what people may do)."""
    return credentials().channel(
        address,
        as_=as_,
        options=[
            ("grpc.max_receive_message_length", 8 * MIB),
            ("grpc.max_send_message_length", 8 * MIB),
        ],
    )


def stub(address: str, *, as_: str | None = grpcauth.GATEWAY) -> files_pb2_grpc.FilesServiceStub:
    return files_pb2_grpc.FilesServiceStub(channel(address, as_=as_))


def header(
    filename: str = "data.bin",
    *,
    metadata: Mapping[str, Any] | None = None,
    content_type: str = "",
    expected_sha256: str = "",
    expected_length: int | None = None,
) -> files_pb2.UploadFileHeader:
    struct = struct_pb2.Struct()
    struct.update(dict(metadata or {}))
    message = files_pb2.UploadFileHeader(
        filename=filename,
        content_type=content_type,
        metadata=struct,
        expected_sha256=expected_sha256,
    )
    if expected_length is not None:
        message.expected_length = expected_length
    return message


def requests(
    head: files_pb2.UploadFileHeader, pieces: Iterable[bytes]
) -> Iterator[files_pb2.UploadFileRequest]:
    yield files_pb2.UploadFileRequest(header=head)
    for piece in pieces:
        yield files_pb2.UploadFileRequest(chunk=piece)
    yield files_pb2.UploadFileRequest(finish=True)


def pieces_of(data: bytes, size: int = MIB) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def upload(
    client: files_pb2_grpc.FilesServiceStub,
    data: bytes,
    filename: str = "data.bin",
    **header_fields: Any,
) -> files_pb2.UploadFileResponse:
    response: files_pb2.UploadFileResponse = client.UploadFile(
        requests(header(filename, **header_fields), pieces_of(data)), timeout=CALL_TIMEOUT
    )
    return response


@dataclass
class Downloaded:
    info: files_pb2.FileInfo
    data: bytes


def download(
    client: files_pb2_grpc.FilesServiceStub, file_id: str, *, offset: int = 0, length: int = 0
) -> Downloaded:
    info: files_pb2.FileInfo | None = None
    data = bytearray()
    for message in client.GetFile(
        files_pb2.GetFileRequest(file_id=file_id, offset=offset, length=length),
        timeout=CALL_TIMEOUT,
    ):
        if message.HasField("info"):
            assert info is None, "the info must come exactly once"
            assert not data, "the info must come before any byte"
            info = message.info
        else:
            data += message.chunk
    assert info is not None, "a download starts with the file's info"
    return Downloaded(info=info, data=bytes(data))


def unique_bytes(size: int) -> bytes:
    """Content no other test uploads (dedup would otherwise join them)."""
    return os.urandom(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def list_files(
    client: files_pb2_grpc.FilesServiceStub, **fields: Any
) -> files_pb2.ListFilesResponse:
    response: files_pb2.ListFilesResponse = client.ListFiles(
        files_pb2.ListFilesRequest(**fields), timeout=CALL_TIMEOUT
    )
    return response


@dataclass(frozen=True)
class RpcFailure:
    """How a call failed: status code and the message the client got."""

    status: grpc.StatusCode
    message: str

    def code(self) -> grpc.StatusCode:
        return self.status

    def details(self) -> str:
        return self.message


def rpc_error(call: Any, *args: Any, **kwargs: Any) -> RpcFailure:
    """How ``call`` fails; fails the test if it succeeds."""
    try:
        result = call(*args, timeout=CALL_TIMEOUT, **kwargs)
        if isinstance(result, Iterator):
            for _ in result:
                pass
    except grpc.RpcError as exc:
        status: grpc.StatusCode = exc.code()
        details: str | None = exc.details()
        return RpcFailure(status=status, message=details or "")
    raise AssertionError("the call succeeded, an error was expected")
