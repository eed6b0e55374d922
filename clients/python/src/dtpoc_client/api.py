"""The typed methods: ``client.files`` and ``client.services``.

Each method takes plain Python arguments, builds the generated request
message and returns the generated answer (or the part of it a caller
wants: a list of records, a status). The transport underneath is REST or
gRPC; callers cannot tell, except that a REST download learns only what
the HTTP headers carry of the file's record.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from google.protobuf import json_format

from dtpoc.files.v1alpha1 import files_pb2
from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_client import errors
from dtpoc_client.transport import CHUNK_BYTES, Transport

Progress = Callable[[int], None]
"""Called with the number of bytes just sent or received."""

FINAL_PHASES = frozenset({"succeeded", "failed", "terminated"})


def _chunks(stream: BinaryIO, progress: Progress | None) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_BYTES):
        if progress is not None:
            progress(len(chunk))
        yield chunk


class Files:
    """The Files service: uploads, downloads, records, deletion."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def upload(
        self,
        path: str | os.PathLike[str],
        *,
        filename: str | None = None,
        content_type: str = "",
        expected_sha256: str = "",
        progress: Progress | None = None,
    ) -> files_pb2.UploadFileResponse:
        """Upload the file at ``path`` in 1 MiB pieces (memory stays at one piece).

        The answer's ``file_id`` is the existing file's when identical bytes
        are stored already (``deduplicated``, message ``File already exists``).
        """
        source = Path(path)
        header = files_pb2.UploadFileHeader(
            filename=filename or source.name,
            content_type=content_type,
            expected_sha256=expected_sha256,
        )
        with source.open("rb") as stream:
            length = os.fstat(stream.fileno()).st_size
            return self._t.upload(header, _chunks(stream, progress), length=length)

    def download(
        self,
        file_id: str,
        dest: str | os.PathLike[str] | BinaryIO,
        *,
        progress: Progress | None = None,
        on_info: Callable[[files_pb2.FileInfo], None] | None = None,
    ) -> files_pb2.FileInfo:
        """Write file ``file_id`` to ``dest`` (a path, replaced only once complete, or a stream).

        ``on_info`` hears the file's record before the first byte (e.g. to
        size a progress bar). A stream that breaks after some bytes (the
        connection dropped, the backend briefly unavailable) is resumed from
        the next byte (HTTP Range / the RPC's offset), as long as each try
        brings more bytes; one that brings none raises.
        """
        if isinstance(dest, str | os.PathLike):
            target = Path(dest)
            partial = target.with_name(f".{target.name}.part")
            try:
                with partial.open("wb") as out:
                    info = self._resuming(file_id, out, progress, on_info)
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
            return info
        return self._resuming(file_id, dest, progress, on_info)

    def _resuming(
        self,
        file_id: str,
        out: BinaryIO,
        progress: Progress | None,
        on_info: Callable[[files_pb2.FileInfo], None] | None,
    ) -> files_pb2.FileInfo:
        written = 0
        info: files_pb2.FileInfo | None = None

        def count(size: int) -> None:
            nonlocal written
            written += size
            if progress is not None:
                progress(size)

        while True:
            before = written
            request = files_pb2.GetFileRequest(file_id=file_id, offset=written)
            try:
                with self._t.download(request) as download:
                    if info is None:
                        info = download.info
                        if on_info is not None:
                            on_info(info)
                    _copy(download.chunks, out, count)
                if info.length and written < info.length:
                    raise errors.ConnectionFailed(
                        f"the download of {file_id} ended after {written} of {info.length} bytes"
                    )
                return info
            except (errors.ConnectionFailed, errors.Unavailable):
                if info is None or written == before:
                    raise

    def info(self, file_id: str) -> files_pb2.FileInfo:
        """The record of one file."""
        answer = self._t.unary(
            "GetFileInfo",
            files_pb2.GetFileInfoRequest(file_id=file_id),
            files_pb2.GetFileInfoResponse,
        )
        return answer.file

    def list(
        self,
        *,
        skip: int = 0,
        limit: int | None = None,
        service_id: str = "",
        replica_index: int | None = None,
        filename: str = "",
    ) -> builtins.list[files_pb2.FileInfo]:
        """File records, newest first (``limit`` 1..1000, the server's 10 when None)."""
        request = files_pb2.ListFilesRequest(
            skip=skip,
            limit=limit,
            service_id=service_id,
            replica_index=replica_index,
            filename=filename,
        )
        answer = self._t.unary("ListFiles", request, files_pb2.ListFilesResponse)
        return builtins.list(answer.files)

    def delete(self, file_id: str, *, force: bool = False) -> files_pb2.DeleteFileResponse:
        """Remove one upload reference (the file goes with its last; 409 while mounted)."""
        return self._t.unary(
            "DeleteFile",
            files_pb2.DeleteFileRequest(file_id=file_id, force=force),
            files_pb2.DeleteFileResponse,
        )

    def usage(self, file_id: str) -> orchestrator_pb2.GetFileUsageResponse:
        """The services that mount a file (active and terminated)."""
        return self._t.unary(
            "GetFileUsage",
            orchestrator_pb2.GetFileUsageRequest(file_id=file_id),
            orchestrator_pb2.GetFileUsageResponse,
        )


def _copy(chunks: Iterator[bytes], out: BinaryIO, progress: Progress | None) -> None:
    for chunk in chunks:
        out.write(chunk)
        if progress is not None:
            progress(len(chunk))


def launch_request(
    spec: orchestrator_pb2.LaunchServiceRequest | Mapping[str, Any],
) -> orchestrator_pb2.LaunchServiceRequest:
    """A launch request from a message or from the REST launch body's JSON shape.

    A body the message cannot hold (an unknown field, a wrong type) raises
    :class:`dtpoc_client.errors.InvalidSpec` naming it, before any call.
    """
    if isinstance(spec, orchestrator_pb2.LaunchServiceRequest):
        return spec
    try:
        return json_format.ParseDict(dict(spec), orchestrator_pb2.LaunchServiceRequest())
    except json_format.ParseError as exc:
        raise errors.InvalidSpec(f"not a launch body: {exc}") from exc


class Services:
    """The Orchestrator: launch, follow, read outputs, terminate."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def launch(
        self, spec: orchestrator_pb2.LaunchServiceRequest | Mapping[str, Any]
    ) -> orchestrator_pb2.LaunchServiceResponse:
        """Launch a service; the answer carries its id (replicas start later)."""
        return self._t.unary(
            "LaunchService", launch_request(spec), orchestrator_pb2.LaunchServiceResponse
        )

    def list(
        self, *, skip: int = 0, limit: int | None = None, status: str = ""
    ) -> builtins.list[orchestrator_pb2.Service]:
        """Service records, newest first; ``status`` filters by phase or status."""
        request = orchestrator_pb2.ListServicesRequest(skip=skip, limit=limit, status=status)
        answer = self._t.unary("ListServices", request, orchestrator_pb2.ListServicesResponse)
        return builtins.list(answer.services)

    def get(self, service_id: str) -> orchestrator_pb2.Service:
        """One service record with its status counts."""
        answer = self._t.unary(
            "GetService",
            orchestrator_pb2.GetServiceRequest(id=service_id),
            orchestrator_pb2.GetServiceResponse,
        )
        return answer.service

    def status(self, service_id: str) -> orchestrator_pb2.ServiceStatus:
        """The service's status, with one entry per replica."""
        answer = self._t.unary(
            "GetServiceStatus",
            orchestrator_pb2.GetServiceStatusRequest(id=service_id),
            orchestrator_pb2.GetServiceStatusResponse,
        )
        return answer.status

    def watch(self, service_id: str) -> Generator[orchestrator_pb2.ServiceStatus, None, None]:
        """The status now, then each change, until the service reaches a final phase."""
        request = orchestrator_pb2.WatchServiceRequest(id=service_id)
        with self._t.watch(request) as updates:
            for update in updates:
                yield update.status

    def logs(
        self,
        service_id: str,
        idx: int,
        *,
        follow: bool = False,
        attempt: int | None = None,
        tail_lines: int | None = None,
        since_seconds: int | None = None,
        timestamps: bool = False,
    ) -> Generator[str, None, None]:
        """Replica ``idx``'s log as text pieces of whole lines; with ``follow``, what
        it printed so far and then each new line until it ends."""
        request = orchestrator_pb2.GetReplicaLogRequest(
            id=service_id, idx=idx, follow=follow, timestamps=timestamps
        )
        if attempt is not None:
            request.attempt = attempt
        if tail_lines is not None:
            request.tail_lines = tail_lines
        if since_seconds is not None:
            request.since_seconds = since_seconds
        with self._t.logs(request) as pieces:
            for piece in pieces:
                if piece.text:
                    yield piece.text

    def output(self, service_id: str, idx: int) -> orchestrator_pb2.GetServiceOutputResponse:
        """Replica ``idx``'s output: its JSON document, or the list of its files.

        Over REST only ``output`` and ``idx`` are filled (the route answers
        the document alone); ``outputs()`` lists the files.
        """
        request = orchestrator_pb2.GetServiceOutputRequest(id=service_id, idx=idx)
        answer = self._t.unary(
            "GetServiceOutput", request, orchestrator_pb2.GetServiceOutputResponse
        )
        answer.idx = idx
        return answer

    def outputs(self, service_id: str) -> builtins.list[orchestrator_pb2.ReplicaOutputs]:
        """Every replica's state and output files, by index."""
        answer = self._t.unary(
            "ListServiceOutputs",
            orchestrator_pb2.ListServiceOutputsRequest(id=service_id),
            orchestrator_pb2.ListServiceOutputsResponse,
        )
        return builtins.list(answer.replicas)

    def terminate(self, service_id: str) -> orchestrator_pb2.TerminateServiceResponse:
        """Stop the service's replicas; the record and its outputs stay."""
        return self._t.unary(
            "TerminateService",
            orchestrator_pb2.TerminateServiceRequest(id=service_id),
            orchestrator_pb2.TerminateServiceResponse,
        )

    def retry(self, service_id: str) -> orchestrator_pb2.RetryServiceResponse:
        """Run a finished service's failed replicas again (scheduled: its latest run's)."""
        return self._t.unary(
            "RetryService",
            orchestrator_pb2.RetryServiceRequest(id=service_id),
            orchestrator_pb2.RetryServiceResponse,
        )

    def resubmit(self, service_id: str) -> str:
        """Launch the service's spec and inputs again as a new service; its id."""
        answer = self._t.unary(
            "ResubmitService",
            orchestrator_pb2.ResubmitServiceRequest(id=service_id),
            orchestrator_pb2.ResubmitServiceResponse,
        )
        return answer.id

    def suspend(self, service_id: str) -> orchestrator_pb2.SuspendServiceResponse:
        """Stop a scheduled service from starting new runs."""
        return self._t.unary(
            "SuspendService",
            orchestrator_pb2.SuspendServiceRequest(id=service_id),
            orchestrator_pb2.SuspendServiceResponse,
        )

    def resume(self, service_id: str) -> orchestrator_pb2.ResumeServiceResponse:
        """Let a suspended scheduled service run on schedule again."""
        return self._t.unary(
            "ResumeService",
            orchestrator_pb2.ResumeServiceRequest(id=service_id),
            orchestrator_pb2.ResumeServiceResponse,
        )
