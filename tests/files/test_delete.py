"""Deleting files, and refusing to delete what a live service mounts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from pymongo.database import Database

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc_local import ports
from tests.files import helpers
from tests.files.orchestrator_double import OrchestratorUsageDouble


@pytest.fixture
def orchestrator() -> Iterator[OrchestratorUsageDouble]:
    double = OrchestratorUsageDouble().start()  # type: ignore[abstract]
    try:
        yield double
    finally:
        double.stop()


def delete(
    client: files_pb2_grpc.FilesServiceStub, file_id: str, *, force: bool = False
) -> files_pb2.DeleteFileResponse:
    response: files_pb2.DeleteFileResponse = client.DeleteFile(
        files_pb2.DeleteFileRequest(file_id=file_id, force=force), timeout=helpers.CALL_TIMEOUT
    )
    return response


def exists(client: files_pb2_grpc.FilesServiceStub, file_id: str) -> bool:
    try:
        client.GetFileInfo(
            files_pb2.GetFileInfoRequest(file_id=file_id), timeout=helpers.CALL_TIMEOUT
        )
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return True


def test_delete_removes_the_file_its_chunks_and_its_identity(
    files: files_pb2_grpc.FilesServiceStub, files_db: Database[dict[str, Any]]
) -> None:
    data = helpers.unique_bytes(helpers.MIB)
    file_id = helpers.upload(files, data).file_id

    assert delete(files, file_id).message

    assert not exists(files, file_id)
    for name in (
        "fs.files",
        "fs.chunks",
        "fs.sha256",
        "fs.pending_uploads",
        "fs.references",
        "fs.generations",
    ):
        assert files_db[name].count_documents({}) == 0, name
    again = helpers.upload(files, data)
    assert not again.deduplicated and again.file_id != file_id


def test_an_orchestrator_that_cannot_answer_blocks_deletes_without_force(
    files_server_factory: Any, orchestrator: OrchestratorUsageDouble
) -> None:
    closed = f"127.0.0.1:{ports.free_port()}"
    for address, failure in [
        (closed, None),
        (orchestrator.address, grpc.StatusCode.INTERNAL),
    ]:
        orchestrator.fail_with = failure
        server = files_server_factory(
            DTPOC_FILES_ORCHESTRATOR_ADDRESS=address,
            DTPOC_FILES_USAGE_CHECK="true",
            DTPOC_FILES_ORCHESTRATOR_TIMEOUT_SECONDS="2",
        )
        with helpers.channel(server.address) as channel:
            client = files_pb2_grpc.FilesServiceStub(channel)
            file_id = helpers.upload(client, helpers.unique_bytes(1000)).file_id

            error = helpers.rpc_error(
                client.DeleteFile, files_pb2.DeleteFileRequest(file_id=file_id)
            )
            assert error.code() == grpc.StatusCode.UNAVAILABLE, address
            assert address in error.details() and "nothing was deleted" in error.details()
            assert exists(client, file_id)

            delete(client, file_id, force=True)
            assert not exists(client, file_id)
