"""The orchestrator's Files port (:class:`dtpoc_orchestrator.ports.Files`): the same tests
for the gRPC adapter (``FilesClient``, against a real Files service) and its in-memory
fake (``InMemoryFiles``), so the unit tier's launch and output tests say what the
orchestrator does with the real Files service."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from bson import ObjectId

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc_common import errors, grpcauth
from dtpoc_local.credentials import credentials
from dtpoc_local.servers.files import FilesServer
from dtpoc_orchestrator import ports
from dtpoc_orchestrator.adapters import files, memory

pytestmark = pytest.mark.asyncio(loop_scope="session")

SERVICE = "0123456789abcdef01234567"

#: Store a file (filename, bytes, metadata) as an upload would; answers its id.
Store = Callable[[str, bytes, dict[str, Any]], str]


@dataclass
class Rig:
    port: ports.Files
    store: Store


def grpc_store(server: FilesServer) -> Store:
    def store(filename: str, data: bytes, metadata: dict[str, Any]) -> str:
        header = files_pb2.UploadFileHeader(filename=filename)
        # A unique label keeps identical bytes of different tests apart.
        header.metadata.update({**metadata, "test_nonce": uuid.uuid4().hex})
        messages = [
            files_pb2.UploadFileRequest(header=header),
            files_pb2.UploadFileRequest(chunk=data),
            files_pb2.UploadFileRequest(finish=True),
        ]
        with credentials().channel(server.address, as_=grpcauth.OPERATOR) as channel:
            answer = files_pb2_grpc.FilesServiceStub(channel).UploadFile(iter(messages), timeout=20)
        return str(answer.file_id)

    return store


@pytest.fixture(params=["grpc", "memory"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    if request.param == "memory":
        fake = memory.InMemoryFiles()
        yield Rig(port=fake, store=lambda name, data, labels: fake.add(name, data, metadata=labels))
        return
    server: FilesServer = request.getfixturevalue("module_files")
    client = files.FilesClient(
        server.address, timeout_seconds=10, token=credentials().token(grpcauth.ORCHESTRATOR)
    )
    try:
        yield Rig(port=client, store=grpc_store(server))
    finally:
        await client.close()


async def test_a_stored_file_is_described_and_can_be_mounted(rig: Rig) -> None:
    file_id = rig.store("input.xlsx", b"12345", {})
    info = await rig.port.get_info(file_id)
    assert (info.file_id, info.filename, info.path, info.length) == (
        file_id,
        "input.xlsx",
        "input.xlsx",
        5,
    )
    assert info.replica_index is None
    assert (await rig.port.prepare_mount(file_id)).file_id == file_id


async def test_an_unknown_file_is_not_found(rig: Rig) -> None:
    unknown = str(ObjectId())
    with pytest.raises(errors.NotFound):
        await rig.port.get_info(unknown)
    with pytest.raises(errors.NotFound):
        await rig.port.prepare_mount(unknown)
    with pytest.raises(errors.NotFound):
        await rig.port.read(unknown, max_bytes=100)


async def test_a_replicas_files_are_those_labelled_with_it(rig: Rig) -> None:
    service_id = str(ObjectId())
    labels = {"service_id": service_id, "replica_index": 1}
    kpi = rig.store("kpi.json", b'{"a": 1}', {**labels, "path": "out/kpi.json", "run": "r1"})
    log = rig.store("log.txt", f"log {ObjectId()}".encode(), {**labels, "path": "log.txt"})
    rig.store("other.txt", f"other {ObjectId()}".encode(), {**labels, "replica_index": 0})
    found = await rig.port.replica_files(service_id=service_id, replica_index=1)
    assert {(f.file_id, f.path, f.replica_index, f.run) for f in found} == {
        (kpi, "out/kpi.json", 1, "r1"),
        (log, "log.txt", 1, ""),
    }
    assert await rig.port.replica_files(service_id=service_id, replica_index=7) == []


async def test_read_answers_the_bytes_up_to_a_size(rig: Rig) -> None:
    data = f"content {ObjectId()}".encode()
    file_id = rig.store("c.txt", data, {})
    assert await rig.port.read(file_id, max_bytes=len(data)) == data
    assert await rig.port.read(file_id, max_bytes=len(data) - 1) is None
