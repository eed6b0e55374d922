"""What only a real orchestrator process shows about refusals (the rules themselves are
the unit tier's: ``tests/unit/orchestrator/test_validation.py``).

The interceptor answers a domain error with its code and ``field: message``, on a
unary call and on a stream; a refused launch writes no record in MongoDB; the
setting that lets the local backend take an image without a command reaches the
process from its environment.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2, orchestrator_pb2_grpc
from dtpoc_local.credentials import credentials
from dtpoc_local.databases import drop_databases
from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.orchestrator import start_orchestrator_server
from tests.orchestrator.helpers import CALL_TIMEOUT, Platform, launch_request


def test_a_refused_launch_names_the_field_and_writes_nothing(local_platform: Platform) -> None:
    records_before = local_platform.records().count_documents({})
    names_before = local_platform.operator.resource_names()
    request = launch_request(ana={"job_type": "ondemand", "reps": 0})
    with pytest.raises(grpc.RpcError) as raised:
        local_platform.stub().LaunchService(request, timeout=CALL_TIMEOUT)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "ana.reps: must be between 1 and 100 for an ondemand service"
    assert local_platform.records().count_documents({}) == records_before
    assert local_platform.operator.resource_names() == names_before


def test_a_malformed_id_is_refused_on_a_stream_too(local_platform: Platform) -> None:
    stream = local_platform.stub().WatchService(
        orchestrator_pb2.WatchServiceRequest(id="xyz"), timeout=CALL_TIMEOUT
    )
    with pytest.raises(grpc.RpcError) as raised:
        list(stream)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (raised.value.details() or "").startswith("id: must be 24 hexadecimal digits")


def test_the_local_containers_setting_lets_the_originals_body_in(
    mongodb_uri: str, module_files: FilesServer, tmp_path: Path
) -> None:
    server = start_orchestrator_server(
        mongodb_uri=mongodb_uri,
        workdir=tmp_path,
        files_address=module_files.address,
        backend="local",
        env_overrides={"DTPOC_ORCHESTRATOR_LOCAL_CONTAINERS": "true"},
    )
    try:
        with credentials().channel(server.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
            request = launch_request(backend="kubernetes", image="busybox", version="latest")
            assert stub.LaunchService(request, timeout=CALL_TIMEOUT).id
    finally:
        server.stop()
        drop_databases(mongodb_uri, {server.database})
