"""The operator's FilesUploads contract: the real Files service (its gRPC server on
FerretDB, called as the operator) and :class:`dtpoc_operator.memory.InMemoryFiles`,
through the collector and the log store that call it.

What the reconciler relies on: the same content answers the same id (a re-upload
after a crash doubles nothing), and content that does not match what the header
promised is refused for good (INVALID_ARGUMENT), storing nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc_common import grpcauth
from dtpoc_local.credentials import credentials
from dtpoc_operator import collector, logstore, memory, ports
from dtpoc_operator.model import Replica

pytestmark = pytest.mark.asyncio(loop_scope="session")

SID = "0123456789abcdef01234567"


@pytest.fixture(params=["files", "memory"])
async def files(request: pytest.FixtureRequest) -> AsyncIterator[ports.FilesUploads]:
    if request.param == "memory":
        yield memory.InMemoryFiles()
        return
    server = request.getfixturevalue("files_server")
    channel = credentials().aio_channel(server.address, as_=grpcauth.OPERATOR)
    try:
        yield files_pb2_grpc.FilesServiceStub(channel)
    finally:
        await channel.close()


async def collect(files: ports.FilesUploads, folder: Path) -> collector.Collected:
    return await collector.OutputCollector(
        files, max_parallel_uploads=2, timeout_seconds=10
    ).collect(folder, service_id=SID, replica_index=0, run=SID)


async def test_the_same_outputs_collected_twice_answer_the_same_ids(
    files: ports.FilesUploads, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_bytes(b"alpha " + tmp_path.name.encode())
    (tmp_path / "b.txt").write_bytes(b"beta " + tmp_path.name.encode())
    first = await collect(files, tmp_path)
    again = await collect(files, tmp_path)
    assert len(first.file_ids) == 2 and len(set(first.file_ids)) == 2
    assert again.file_ids == first.file_ids
    assert first.skipped == ()


async def test_a_log_is_stored_per_attempt(files: ports.FilesUploads, tmp_path: Path) -> None:
    store = logstore.LogStore(files, timeout_seconds=10)
    replica = Replica(SID, 0, "succeeded", attempt=2)
    content = b"line of " + tmp_path.name.encode() + b"\n"
    logs = [
        ports.AttemptLog(attempt=1, name="p-1", content=content + b"first"),
        ports.AttemptLog(attempt=2, name="p-2", content=content + b"second"),
    ]
    stored = await store.store(service_id=SID, replica=replica, logs=logs)
    assert [g.attempt for g in stored] == [1, 2]
    assert len({g.file_id for g in stored}) == 2
    assert not any(g.truncated for g in stored)


async def test_content_that_does_not_match_its_header_is_refused(
    files: ports.FilesUploads, tmp_path: Path
) -> None:
    content = b"what was scanned " + tmp_path.name.encode()
    header = files_pb2.UploadFileHeader(
        filename="a.txt",
        expected_sha256=hashlib.sha256(content).hexdigest(),
        expected_length=len(content),
    )

    async def torn() -> AsyncIterator[files_pb2.UploadFileRequest]:
        yield files_pb2.UploadFileRequest(header=header)
        yield files_pb2.UploadFileRequest(chunk=content[:-1] + b"!")
        yield files_pb2.UploadFileRequest(finish=True)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await files.UploadFile(torn(), timeout=10)
    assert refused.value.code() in collector.PERMANENT_CODES
