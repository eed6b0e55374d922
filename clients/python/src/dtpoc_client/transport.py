"""What a transport does: the typed API sits on top of either REST or gRPC.

A transport speaks the RPCs with the generated request and response
messages; :mod:`dtpoc_client.api` never sees HTTP or gRPC. Streams are
iterators of bytes or messages, so memory stays at one chunk whatever the
file size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, TypeVar

from google.protobuf import message

from dtpoc.files.v1alpha1 import files_pb2
from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2

R = TypeVar("R", bound=message.Message)
CHUNK_BYTES = 1024 * 1024
"""Pieces of an upload or download: 1 MiB, what the Files service stores per chunk."""


@dataclass
class Download:
    """An open download: the file's record (as much as the transport learns) and its bytes."""

    info: files_pb2.FileInfo
    chunks: Iterator[bytes]


class Transport(Protocol):
    """The RPCs, by name, with generated messages."""

    def unary(self, name: str, request: message.Message, response: type[R]) -> R:
        """Call unary RPC ``name``; raise :class:`dtpoc_client.errors.ApiError` on refusal."""
        ...

    def upload(
        self, header: files_pb2.UploadFileHeader, chunks: Iterable[bytes], *, length: int
    ) -> files_pb2.UploadFileResponse:
        """Send ``chunks`` (``length`` bytes in all) as one upload."""
        ...

    def download(self, request: files_pb2.GetFileRequest) -> AbstractContextManager[Download]:
        """Open a download; the stream closes when the context ends."""
        ...

    def watch(
        self, request: orchestrator_pb2.WatchServiceRequest
    ) -> AbstractContextManager[Iterator[orchestrator_pb2.WatchServiceResponse]]:
        """Follow a service's status until its final phase."""
        ...

    def logs(
        self, request: orchestrator_pb2.GetReplicaLogRequest
    ) -> AbstractContextManager[Iterator[orchestrator_pb2.GetReplicaLogResponse]]:
        """A replica's log, in pieces (with ``follow``, until the replica ends)."""
        ...

    def api_version(self) -> str:
        """The API version the server speaks."""
        ...

    def close(self) -> None: ...
