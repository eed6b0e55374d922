"""Terminate stops the workload, keeps the record and outputs, and is idempotent."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import grpc
import pytest
from bson import ObjectId

from dtpoc.files.v1alpha1 import files_pb2
from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.orchestrator import OrchestratorServer
from tests.orchestrator.helpers import CALL_TIMEOUT, Platform, status_dict, value_to_python


def terminate(platform: Platform, service_id: str) -> orchestrator_pb2.TerminateServiceResponse:
    return platform.stub().TerminateService(
        orchestrator_pb2.TerminateServiceRequest(id=service_id), timeout=CALL_TIMEOUT
    )


def test_terminate_keeps_record_status_and_outputs_and_is_idempotent(
    shared_platform: Platform,
) -> None:
    platform = shared_platform
    service_id = platform.launch(ana={"job_type": "ondemand", "reps": 2})
    output = json.dumps({"replica": 0, "service": service_id}).encode()
    file_0 = platform.upload_output(service_id, 0, "kpis.json", output)
    platform.operator.write_status(
        service_id,
        status_dict(
            phase="running",
            active=1,
            succeeded=1,
            total=2,
            replicas=[
                {"index": 0, "state": "succeeded", "output_file_ids": [file_0]},
                {"index": 1, "state": "running"},
            ],
        ),
    )
    before = time.time()
    first = terminate(platform, service_id)
    assert first.message == f"service {service_id} is terminated; its record and outputs are kept"
    service = first.service
    assert (service.phase, service.status) == ("terminated", "error")  # replica 1 never finished
    assert (service.active_runs, service.succeeded_runs, service.total_runs) == (0, 1, 2)
    assert list(service.output_files) == [file_0]
    assert service.HasField("terminated_at")
    assert before - 1 <= service.terminated_at <= time.time() + 1

    # The workload is asked to go: marked for the operator, which lets it go once it has
    # collected the outputs (Kubernetes: the finalizer the resource was created with).
    resource = platform.operator.resource(service_id)
    assert resource is not None
    assert resource["metadata"]["deletionTimestamp"]
    platform.operator.finish_deletion(service_id)
    assert platform.operator.resource(service_id) is None

    second = terminate(platform, service_id)
    assert second == first

    # Everything still answers from the record.
    stub = platform.stub()
    status = stub.GetServiceStatus(
        orchestrator_pb2.GetServiceStatusRequest(id=service_id), timeout=CALL_TIMEOUT
    ).status
    assert (status.phase, status.succeeded_runs, status.active_runs) == ("terminated", 1, 0)
    assert [(r.index, r.state) for r in status.replicas] == [(0, "succeeded"), (1, "running")]
    answer = stub.GetServiceOutput(
        orchestrator_pb2.GetServiceOutputRequest(id=service_id, idx=0), timeout=CALL_TIMEOUT
    )
    assert value_to_python(answer.output) == {"replica": 0, "service": service_id}
    listed = stub.ListServices(
        orchestrator_pb2.ListServicesRequest(limit=1000), timeout=CALL_TIMEOUT
    )
    assert service_id in {s.id for s in listed.services}
    info = platform.files_stub().GetFileInfo(
        files_pb2.GetFileInfoRequest(file_id=file_0), timeout=CALL_TIMEOUT
    )
    assert info.file.file_id == file_0


def test_files_refuses_to_delete_a_file_a_live_service_mounts(
    files_server_factory: Callable[..., FilesServer],
    orchestrator_server_factory: Callable[..., OrchestratorServer],
) -> None:
    """The real Files service asks the real orchestrator before a delete."""
    files = files_server_factory()
    orchestrator = orchestrator_server_factory(files_address=files.address)
    # A second Files process on the same database, this one asking the orchestrator.
    checked = files_server_factory(
        DTPOC_FILES_DATABASE=files.database,
        DTPOC_FILES_USAGE_CHECK="true",
        DTPOC_FILES_ORCHESTRATOR_ADDRESS=orchestrator.address,
    )
    platform = Platform(
        orchestrator=orchestrator,
        files=checked,
        operator=None,
        mongodb_uri="",  # type: ignore[arg-type]
    )
    try:
        file_id = platform.upload("input.xlsx", f"input {ObjectId()}".encode())
        service_id = platform.launch(mount_files={file_id: "input.xlsx"})
        files_stub = platform.files_stub()
        with pytest.raises(grpc.RpcError) as raised:
            files_stub.DeleteFile(files_pb2.DeleteFileRequest(file_id=file_id), timeout=30)
        assert raised.value.code() == grpc.StatusCode.ABORTED, "in use: HTTP 409"
        assert service_id in (raised.value.details() or "")
        terminate(platform, service_id)
        files_stub.DeleteFile(files_pb2.DeleteFileRequest(file_id=file_id), timeout=30)
    finally:
        platform.close()
