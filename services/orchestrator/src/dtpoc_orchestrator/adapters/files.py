"""The Files service, as the orchestrator needs it: does a file exist, which
files did a replica write, and a small file's content.

Every call has a deadline. The Files service being down or slow is
UNAVAILABLE "files service unreachable"; its NOT_FOUND is a NotFound naming
the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
from google.protobuf import json_format

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc_common import errors, grpcclient, replica_logs
from dtpoc_common import logging as dlog
from dtpoc_orchestrator import domain

log = dlog.get_logger(__name__)

LIST_PAGE = 1000


def stored_file(info: files_pb2.FileInfo) -> domain.StoredFile:
    metadata: dict[str, Any] = (
        json_format.MessageToDict(info.metadata) if info.HasField("metadata") else {}
    )
    index = metadata.get("replica_index")
    try:
        replica_index = int(index) if index is not None else None
    except (TypeError, ValueError):
        replica_index = None
    return domain.StoredFile(
        file_id=info.file_id,
        filename=info.filename,
        path=str(metadata.get("path") or info.filename),
        length=info.length,
        content_type=info.content_type,
        replica_index=replica_index,
        run=str(metadata.get("run") or ""),
        kind=str(metadata.get(replica_logs.KIND_KEY) or ""),
    )


class FilesClient:
    """A channel to the Files service and the calls the orchestrator makes."""

    def __init__(self, address: str, *, timeout_seconds: float, token: str | None = None) -> None:
        self.address = address
        self._timeout = timeout_seconds
        self._channel = grpcclient.open_channel(address, token=token)
        self._stub = files_pb2_grpc.FilesServiceStub(self._channel)

    @contextlib.contextmanager
    def _rpc_errors(self, action: str, *, file_id: str = "") -> Iterator[None]:
        try:
            yield
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.NOT_FOUND:
                raise errors.NotFound(f"file {file_id} does not exist") from exc
            log.warning(
                "files service call failed",
                action=action,
                files=self.address,
                code=code.name,
                details=(exc.details() or "")[:300],
            )
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise errors.Unavailable(
                    f"files service unreachable at {self.address}; could not {action}"
                ) from exc
            raise errors.Unavailable(
                f"the files service could not {action} ({code.name}: {exc.details()})"
            ) from exc

    async def get_info(self, file_id: str) -> domain.StoredFile:
        """One ``GetFileInfo`` call."""
        with self._rpc_errors(f"look up file {file_id}", file_id=file_id):
            response = await self._stub.GetFileInfo(
                files_pb2.GetFileInfoRequest(file_id=file_id), timeout=self._timeout
            )
        return stored_file(response.file)

    async def prepare_mount(self, file_id: str) -> domain.StoredFile:
        """Tell Files a launch (recorded already) will mount the file; NotFound when
        it does not exist. A delete deciding at the same moment looks again."""
        with self._rpc_errors(f"prepare file {file_id} for mounting", file_id=file_id):
            response = await self._stub.PrepareMount(
                files_pb2.PrepareMountRequest(file_id=file_id), timeout=self._timeout
            )
        return stored_file(response.file)

    async def replica_files(
        self, *, service_id: str, replica_index: int
    ) -> list[domain.StoredFile]:
        """Every output stored with metadata ``{service_id, replica_index}`` (the
        replica's stored logs, ``kind: log``, are not outputs and are left out)."""
        found: list[domain.StoredFile] = []
        token = ""
        action = f"list the outputs of replica {replica_index} of service {service_id}"
        while True:
            request = files_pb2.ListFilesRequest(
                service_id=service_id,
                replica_index=replica_index,
                limit=LIST_PAGE,
                page_token=token,
            )
            with self._rpc_errors(action):
                response = await self._stub.ListFiles(request, timeout=self._timeout)
            stored = (stored_file(info) for info in response.files)
            found.extend(f for f in stored if f.kind != replica_logs.KIND)
            token = response.next_page_token
            if not token or not response.files:
                return found

    async def read(self, file_id: str, *, max_bytes: int) -> bytes | None:
        """``GetFile``, given up as soon as the file is known to be larger than ``max_bytes``."""
        chunks: list[bytes] = []
        size = 0
        with self._rpc_errors(f"download file {file_id}", file_id=file_id):
            call = self._stub.GetFile(
                files_pb2.GetFileRequest(file_id=file_id), timeout=self._timeout
            )
            try:
                async for message in call:
                    if message.HasField("info") and message.info.length > max_bytes:
                        return None
                    if message.HasField("chunk"):
                        size += len(message.chunk)
                        if size > max_bytes:
                            return None
                        chunks.append(message.chunk)
            finally:
                call.cancel()
        return b"".join(chunks)

    async def stream(self, file_id: str) -> AsyncIterator[bytes]:
        """The file's bytes as Files sends them (a stored log, read in chunks)."""
        with self._rpc_errors(f"download file {file_id}", file_id=file_id):
            call = self._stub.GetFile(
                files_pb2.GetFileRequest(file_id=file_id), timeout=self._timeout
            )
            try:
                async for message in call:
                    if message.HasField("chunk"):
                        yield message.chunk
            finally:
                call.cancel()

    async def close(self) -> None:
        await self._channel.close()
