"""Each started gRPC server answers reflection and health like grpcurl expects.

``grpcurl -plaintext ADDRESS list`` asks the reflection service for the
services a server offers; this test asks the same question with the
reflection client and checks the answer against the protos.
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.orchestrator import OrchestratorServer

COMMON = {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}


def reflected_services(address: str) -> set[str]:
    with grpc.insecure_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        return set(database.get_services())


def reflected_methods(address: str, service: str) -> set[str]:
    with grpc.insecure_channel(address) as channel:
        pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        return {m.name for m in pool.FindServiceByName(service).methods}


def health_status(address: str, service: str) -> int:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(answer.status)


def test_files_server_lists_its_services(files_server: FilesServer) -> None:
    services = reflected_services(files_server.address)
    assert services == {"dtpoc.files.v1alpha1.FilesService", *COMMON}
    methods = reflected_methods(files_server.address, "dtpoc.files.v1alpha1.FilesService")
    assert {"UploadFile", "GetFile", "GetFileInfo", "ListFiles", "DeleteFile"} <= methods
    serving = health_pb2.HealthCheckResponse.SERVING
    assert health_status(files_server.address, "dtpoc.files.v1alpha1.FilesService") == serving


def test_orchestrator_server_lists_its_services(orchestrator_server: OrchestratorServer) -> None:
    name = "dtpoc.orchestrator.v1alpha1.OrchestratorService"
    assert reflected_services(orchestrator_server.address) == {name, *COMMON}
    methods = reflected_methods(orchestrator_server.address, name)
    assert {"LaunchService", "GetServiceStatus", "TerminateService", "WatchService"} <= methods
    serving = health_pb2.HealthCheckResponse.SERVING
    assert health_status(orchestrator_server.address, name) == serving


def test_unknown_service_is_not_found_by_health(files_server: FilesServer) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        health_status(files_server.address, "no.such.Service")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
