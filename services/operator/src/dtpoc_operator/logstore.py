"""Stores the logs of a finished replica's attempts in Files, beside its outputs.

Called by the reconciler at the moment it collects a replica's outputs
(the replica is final, nothing of it runs any more), so a log is stored
once it is complete and survives the pod, the local attempt folder, a
terminate and an operator restart. Each attempt's log is one file with
metadata ``{service_id, replica_index, attempt, run, kind: log}``; the ids
go into the replica's status entry (``logs``), never into its outputs.
Files deduplicates by SHA-256, so storing again after a crash answers the
same id.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import grpc
from google.protobuf import struct_pb2

from dtpoc.files.v1alpha1 import files_pb2
from dtpoc_common import logging as dlog
from dtpoc_common import replica_logs
from dtpoc_operator import collector, ports
from dtpoc_operator.model import Replica, ReplicaLog

log = dlog.get_logger(__name__)

CONTENT_TYPE = "text/plain"


def capped(content: bytes, *, max_bytes: int) -> bytes:
    """``content`` cut at ``max_bytes`` and ended by the marker line when it was
    longer; a log already ended by the marker stays as it is."""
    if len(content) <= max_bytes or is_truncated(content[: max_bytes + 4096]):
        return content
    kept = content[:max_bytes]
    ending = b"" if kept.endswith(b"\n") else b"\n"
    marker = f"{replica_logs.timestamp()} {replica_logs.truncation_marker(max_bytes)}\n"
    return kept + ending + marker.encode()


def is_truncated(content: bytes) -> bool:
    """True when the log ends with the cap's marker line."""
    last = content.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode(errors="replace")
    return replica_logs.split_line(last)[1].startswith(replica_logs.MARKER_PREFIX)


class LogStore:
    """Uploads attempt logs to Files (the operator's own token)."""

    def __init__(self, stub: ports.FilesUploads, *, timeout_seconds: float):
        self._stub = stub
        self._timeout = timeout_seconds

    async def store(
        self, *, service_id: str, replica: Replica, logs: list[ports.AttemptLog]
    ) -> tuple[ReplicaLog, ...]:
        """One :class:`ReplicaLog` per stored attempt; CollectError when Files cannot
        take them now (the reconcile is retried), a log it refuses for good is skipped."""
        stored: list[ReplicaLog] = []
        for attempt_log in logs:
            try:
                file_id = await self._upload(service_id, replica, attempt_log)
            except grpc.aio.AioRpcError as error:
                if error.code() in collector.PERMANENT_CODES:
                    log.warning(
                        "log refused by Files",
                        service_id=service_id,
                        replica_index=replica.index,
                        attempt=attempt_log.attempt,
                        detail=error.details(),
                    )
                    continue
                raise collector.CollectError(
                    f"Files did not take the log of replica {replica.index}: "
                    f"{error.code().name} {error.details()}"
                ) from error
            stored.append(
                ReplicaLog(
                    attempt=attempt_log.attempt,
                    file_id=file_id,
                    truncated=is_truncated(attempt_log.content),
                )
            )
        if stored:
            log.info(
                "logs stored",
                service_id=service_id,
                replica_index=replica.index,
                run=replica.run,
                attempts=len(stored),
            )
        return tuple(stored)

    async def _upload(self, service_id: str, replica: Replica, item: ports.AttemptLog) -> str:
        metadata = struct_pb2.Struct()
        metadata.update(
            {
                "service_id": service_id,
                "replica_index": replica.index,
                "attempt": item.attempt,
                "run": replica.run,
                replica_logs.KIND_KEY: replica_logs.KIND,
            }
        )
        content = item.content
        header = files_pb2.UploadFileHeader(
            filename=collector.upload_filename(f"{item.name}.log"),
            content_type=CONTENT_TYPE,
            metadata=metadata,
            expected_sha256=hashlib.sha256(content).hexdigest(),
            expected_length=len(content),
        )

        async def requests() -> AsyncIterator[files_pb2.UploadFileRequest]:
            yield files_pb2.UploadFileRequest(header=header)
            for start in range(0, len(content), collector.CHUNK_BYTES):
                yield files_pb2.UploadFileRequest(
                    chunk=content[start : start + collector.CHUNK_BYTES]
                )
            yield files_pb2.UploadFileRequest(finish=True)

        response: files_pb2.UploadFileResponse = await self._stub.UploadFile(
            requests(), timeout=self._timeout
        )
        return response.file_id
