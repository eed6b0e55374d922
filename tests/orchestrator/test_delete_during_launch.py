"""A delete and a launch of a service that mounts the file, interleaved.

Files asks the orchestrator who mounts a file, then deletes it. A launch
accepted between the two would mount a file that is gone. To put the launch
exactly there, Files asks through :class:`InterleavingUsageProxy`: a real
gRPC server that forwards ``GetFileUsage`` to the real orchestrator and, the
first time, launches a service mounting the file *after* the orchestrator
answered and *before* Files gets the answer. Everything else (both Files
processes, the orchestrator, the database) is the real thing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2, orchestrator_pb2_grpc
from dtpoc_common import grpcauth
from dtpoc_local.credentials import credentials
from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.orchestrator import OrchestratorServer
from tests.orchestrator.helpers import CALL_TIMEOUT, Platform, launch_request


class InterleavingUsageProxy(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    """Forwards ``GetFileUsage``; the first time, launches a service mounting the file
    between the orchestrator's answer and its delivery (a named test interposer)."""

    def __init__(self, orchestrator_address: str) -> None:
        # Forwards as the Files service it stands in for; launches as the gateway.
        self._channel = credentials().channel(orchestrator_address, as_=grpcauth.FILES)
        self._stub = orchestrator_pb2_grpc.OrchestratorServiceStub(self._channel)
        self._launch_channel = credentials().channel(orchestrator_address)
        self._launcher = orchestrator_pb2_grpc.OrchestratorServiceStub(self._launch_channel)
        self.launched: list[str] = []
        self.launch_errors: list[grpc.StatusCode] = []
        self.answers: list[list[str]] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(self, self._server)
        self.address = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"

    def GetFileUsage(  # noqa: N802 - gRPC method name
        self, request: orchestrator_pb2.GetFileUsageRequest, context: Any
    ) -> orchestrator_pb2.GetFileUsageResponse:
        answer: orchestrator_pb2.GetFileUsageResponse = self._stub.GetFileUsage(
            request, timeout=CALL_TIMEOUT
        )
        self.answers.append(list(answer.active_service_ids))
        if len(self.answers) == 1:
            launch = launch_request(mount_files={request.file_id: "input.xlsx"})
            try:
                self.launched.append(self._launcher.LaunchService(launch, timeout=CALL_TIMEOUT).id)
            except grpc.RpcError as exc:
                self.launch_errors.append(exc.code())
        return answer

    def start(self) -> InterleavingUsageProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)
        self._channel.close()
        self._launch_channel.close()


@pytest.fixture
def interleaved(
    files_server_factory: Callable[..., FilesServer],
    orchestrator_server_factory: Callable[..., OrchestratorServer],
) -> Iterator[tuple[Platform, InterleavingUsageProxy]]:
    files_for_orchestrator = files_server_factory()
    orchestrator = orchestrator_server_factory(files_address=files_for_orchestrator.address)
    proxy = InterleavingUsageProxy(orchestrator.address).start()
    checked = files_server_factory(
        DTPOC_FILES_DATABASE=files_for_orchestrator.database,
        DTPOC_FILES_USAGE_CHECK="true",
        DTPOC_FILES_ORCHESTRATOR_ADDRESS=proxy.address,
    )
    platform = Platform(
        orchestrator=orchestrator,
        files=checked,
        operator=None,  # type: ignore[arg-type]
        mongodb_uri="",
    )
    try:
        yield platform, proxy
    finally:
        platform.close()
        proxy.stop()


def file_exists(files: files_pb2_grpc.FilesServiceStub, file_id: str) -> bool:
    try:
        files.GetFileInfo(files_pb2.GetFileInfoRequest(file_id=file_id), timeout=CALL_TIMEOUT)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return True


def test_a_launch_between_the_usage_check_and_the_delete_keeps_its_file(
    interleaved: tuple[Platform, InterleavingUsageProxy],
) -> None:
    platform, proxy = interleaved
    file_id = platform.upload("input.xlsx", b"the only copy of the lab's input")
    files = platform.files_stub()

    try:
        files.DeleteFile(files_pb2.DeleteFileRequest(file_id=file_id), timeout=CALL_TIMEOUT)
        deleted = True
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.ABORTED, exc.details()
        refusal = exc.details() or ""
        deleted = False

    assert proxy.answers[0] == [], "the first usage check saw no service"
    assert proxy.launched or proxy.launch_errors, "the launch ran in between"
    if proxy.launched:
        # The launch won: the delete must have looked again and refused.
        assert not deleted, "the file was deleted under a service accepted to mount it"
        assert file_exists(files, file_id)
        assert proxy.launched[0] in refusal
        assert len(proxy.answers) == 2, "the delete asked again after the launch"
    else:
        assert proxy.launch_errors == [grpc.StatusCode.NOT_FOUND]
