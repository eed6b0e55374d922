"""Launching: what is written where, and that a failed launch leaves nothing behind."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from bson import ObjectId

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2, orchestrator_pb2_grpc
from dtpoc_common import analytics, grpcauth
from dtpoc_local import ports
from dtpoc_local.credentials import credentials
from dtpoc_local.kube import KubeCluster
from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.orchestrator import OrchestratorServer
from tests.orchestrator.helpers import (
    CALL_TIMEOUT,
    KubeOperatorDouble,
    LocalOperatorDouble,
    Platform,
    launch_request,
    make_platform,
    service_account_kubeconfig,
    unreachable_kubeconfig,
)

_open_channels: list[grpc.Channel] = []


@pytest.fixture(autouse=True)
def _close_channels() -> Iterator[None]:
    """Close every channel a test opened: a gRPC channel left reconnecting to a stopped
    server can deadlock gRPC's fork handler when the next fixture starts a process."""
    yield
    while _open_channels:
        _open_channels.pop().close()


def _stub(
    server: OrchestratorServer, *, as_: str = grpcauth.GATEWAY
) -> orchestrator_pb2_grpc.OrchestratorServiceStub:
    channel = credentials().channel(server.address, as_=as_)
    _open_channels.append(channel)
    return orchestrator_pb2_grpc.OrchestratorServiceStub(channel)


def test_launch_writes_the_record_and_the_resource(platform: Platform) -> None:
    input_id = platform.upload("input.xlsx", b"workbook bytes")
    service_id = platform.launch(
        image="ghcr.io/cam-digital-hospitals/digital-hosp-des",
        version="2.1",
        description="Histopathology lab simulation",
        env={"INPUT_EXCEL_FILE": "/input/input.xlsx", "SIM_HOURS": "1176"},
        mount_files={input_id: "input.xlsx"},
        ana={
            "job_type": "ondemand",
            "reps": 3,
            "parallelism": 2,
            "backoff_limit_per_index": 1,
            "active_deadline_seconds": 7200,
            "ttl_seconds_after_finished": 600,
        },
        command=["python", "-m", "histolab"],
        args=["--fast"],
        resources={"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}},
        labels={"app.kubernetes.io/part-of": "histolab"},
    )
    assert ObjectId.is_valid(service_id) and len(service_id) == 24

    record = platform.records().find_one({"_id": ObjectId(service_id)})
    assert record is not None
    assert record["state"] == "launched"
    assert record["terminated_at"] is None
    assert record["input_file_ids"] == [input_id]
    assert abs(record["created_at"] - time.time()) < 600

    resource = platform.operator.resource(service_id)
    assert resource is not None
    assert resource["metadata"]["name"] == service_id
    assert resource["metadata"]["namespace"] == platform.orchestrator.namespace
    assert resource["metadata"]["labels"] == {
        "app.kubernetes.io/part-of": "histolab",
        analytics.LABEL_SERVICE_ID: service_id,
    }
    assert resource["spec"] == {
        "image": "ghcr.io/cam-digital-hospitals/digital-hosp-des",
        "version": "2.1",
        "description": "Histopathology lab simulation",
        "jobType": "ondemand",
        "reps": 3,
        "env": {"INPUT_EXCEL_FILE": "/input/input.xlsx", "SIM_HOURS": "1176"},
        "command": ["python", "-m", "histolab"],
        "args": ["--fast"],
        "parallelism": 2,
        "backoffLimitPerIndex": 1,
        "activeDeadlineSeconds": 7200,
        "ttlSecondsAfterFinished": 600,
        "resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}},
        "inputFiles": {input_id: "input.xlsx"},
    }
    assert not resource.get("status")  # only the operator writes status

    got = platform.stub().GetService(
        orchestrator_pb2.GetServiceRequest(id=service_id), timeout=CALL_TIMEOUT
    )
    service = got.service
    assert (service.image, service.version, service.reps, service.job_type) == (
        "ghcr.io/cam-digital-hospitals/digital-hosp-des",
        "2.1",
        3,
        "ondemand",
    )
    assert dict(service.mount_files) == {input_id: "input.xlsx"}
    assert dict(service.labels) == {"app.kubernetes.io/part-of": "histolab"}
    assert list(service.command) == ["python", "-m", "histolab"]
    assert not service.HasField("terminated_at")


def test_scheduled_and_persistent_launches_map_their_fields(platform: Platform) -> None:
    scheduled = platform.launch(ana={"job_type": "scheduled", "reps": 2, "schedule": "0 6 * * *"})
    persistent = platform.launch(port=8080, ana={"job_type": "persistent"})
    scheduled_spec = platform.operator.resource(scheduled)["spec"]  # type: ignore[index]
    persistent_spec = platform.operator.resource(persistent)["spec"]  # type: ignore[index]
    assert (scheduled_spec["jobType"], scheduled_spec["reps"], scheduled_spec["schedule"]) == (
        "scheduled",
        2,
        "0 6 * * *",
    )
    assert "port" not in scheduled_spec
    assert persistent_spec["jobType"] == "persistent"
    assert persistent_spec["port"] == 8080
    assert "reps" not in persistent_spec
    assert "expose" not in persistent_spec, "the original's body: in the cluster only"
    service = (
        platform.stub()
        .GetService(orchestrator_pb2.GetServiceRequest(id=persistent), timeout=CALL_TIMEOUT)
        .service
    )
    assert service.port == 8080 and service.reps == 0


def _nothing_written(platform: Platform, names_before: set[str]) -> None:
    assert platform.records().count_documents({}) == 0
    assert platform.operator.resource_names() == names_before


def test_files_down_is_unavailable_and_writes_nothing(
    orchestrator_server_factory: Callable[..., OrchestratorServer], mongodb_uri: str
) -> None:
    nowhere = f"127.0.0.1:{ports.free_port()}"
    server = orchestrator_server_factory(
        files_address=nowhere, DTPOC_ORCHESTRATOR_FILES_TIMEOUT_SECONDS="2"
    )
    request = launch_request(mount_files={str(ObjectId()): "in.xlsx"})
    with pytest.raises(grpc.RpcError) as raised:
        _stub(server).LaunchService(request, timeout=CALL_TIMEOUT)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"files service unreachable at {nowhere}" in (raised.value.details() or "")
    local = LocalOperatorDouble(mongodb_uri, server.database)
    try:
        assert local.resource_names() == set()
        assert local._client[server.database]["services"].count_documents({}) == 0
    finally:
        local.close()


def test_launch_without_input_files_does_not_need_files(
    orchestrator_server_factory: Callable[..., OrchestratorServer],
) -> None:
    server = orchestrator_server_factory(files_address=f"127.0.0.1:{ports.free_port()}")
    response = _stub(server).LaunchService(launch_request(), timeout=CALL_TIMEOUT)
    assert len(response.id) == 24


def _kube_server(
    factory: Callable[..., OrchestratorServer],
    files_server: FilesServer,
    *,
    kubeconfig: Path,
    namespace: str,
) -> OrchestratorServer:
    return factory(
        files_address=files_server.address,
        backend="kubernetes",
        kubeconfig_path=kubeconfig,
        namespace=namespace,
    )


def _record_count(mongodb_uri: str, server: OrchestratorServer) -> int:
    local = LocalOperatorDouble(mongodb_uri, server.database)
    try:
        return int(local._client[server.database]["services"].count_documents({}))
    finally:
        local.close()


def test_a_missing_namespace_fails_the_launch_without_an_orphan_record(
    orchestrator_server_factory: Callable[..., OrchestratorServer],
    files_server: FilesServer,
    kube: KubeCluster,
    analytics_crd: str,
    mongodb_uri: str,
) -> None:
    server = _kube_server(
        orchestrator_server_factory,
        files_server,
        kubeconfig=kube.kubeconfig_path,
        namespace="namespace-that-does-not-exist",
    )
    with pytest.raises(grpc.RpcError) as raised:
        _stub(server).LaunchService(launch_request(backend="kubernetes"), timeout=CALL_TIMEOUT)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = raised.value.details() or ""
    assert "namespace-that-does-not-exist" in details
    assert _record_count(mongodb_uri, server) == 0
    listed = _stub(server).ListServices(orchestrator_pb2.ListServicesRequest(), timeout=10)
    assert list(listed.services) == []


def test_rbac_refusal_is_permission_denied_without_an_orphan_record(
    orchestrator_server_factory: Callable[..., OrchestratorServer],
    files_server: FilesServer,
    kube: KubeCluster,
    analytics_crd: str,
    kube_namespace: str,
    mongodb_uri: str,
    tmp_path: Path,
) -> None:
    kubeconfig = service_account_kubeconfig(
        kube, namespace=kube_namespace, verbs=["get", "list", "watch"], path=tmp_path / "kc"
    )
    server = _kube_server(
        orchestrator_server_factory, files_server, kubeconfig=kubeconfig, namespace=kube_namespace
    )
    with pytest.raises(grpc.RpcError) as raised:
        _stub(server).LaunchService(launch_request(backend="kubernetes"), timeout=CALL_TIMEOUT)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    details = raised.value.details() or ""
    assert details.startswith("the Kubernetes API server refused to create Analytics")
    assert "forbidden" in details
    assert _record_count(mongodb_uri, server) == 0
    assert KubeOperatorDouble(kube, kube_namespace).resource_names() == set()


def test_an_unreachable_apiserver_is_unavailable_and_nothing_is_shown(
    orchestrator_server_factory: Callable[..., OrchestratorServer],
    files_server: FilesServer,
    kube: KubeCluster,
    mongodb_uri: str,
    tmp_path: Path,
) -> None:
    kubeconfig = unreachable_kubeconfig(kube, port=ports.free_port(), path=tmp_path / "kc")
    server = _kube_server(
        orchestrator_server_factory, files_server, kubeconfig=kubeconfig, namespace="default"
    )
    stub = _stub(server)
    with pytest.raises(grpc.RpcError) as raised:
        stub.LaunchService(launch_request(backend="kubernetes"), timeout=CALL_TIMEOUT)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "Kubernetes API server is unreachable" in (raised.value.details() or "")
    # The outcome of the write is unknown, so the record may stay "creating" until the
    # apiserver answers again - but it is never shown as a service.
    local = LocalOperatorDouble(mongodb_uri, server.database)
    try:
        records = list(local._client[server.database]["services"].find())
    finally:
        local.close()
    assert all(r["state"] == "creating" for r in records)
    with pytest.raises(grpc.RpcError) as raised:
        stub.ListServices(orchestrator_pb2.ListServicesRequest(), timeout=CALL_TIMEOUT)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_database_down_is_unavailable_database_unreachable(
    orchestrator_server_factory: Callable[..., OrchestratorServer], files_server: FilesServer
) -> None:
    server = orchestrator_server_factory(
        files_address=files_server.address,
        DTPOC_ORCHESTRATOR_MONGODB_URI=f"mongodb://127.0.0.1:{ports.free_port()}/",
        DTPOC_ORCHESTRATOR_MONGODB_TIMEOUT_MS="500",
    )
    stub = _stub(server)
    files_caller = _stub(server, as_=grpcauth.FILES)
    calls: list[Callable[[], Any]] = [
        lambda: stub.Healthz(orchestrator_pb2.HealthzRequest(), timeout=CALL_TIMEOUT),
        lambda: stub.LaunchService(launch_request(), timeout=CALL_TIMEOUT),
        lambda: stub.ListServices(orchestrator_pb2.ListServicesRequest(), timeout=CALL_TIMEOUT),
        lambda: files_caller.GetFileUsage(
            orchestrator_pb2.GetFileUsageRequest(file_id=str(ObjectId())), timeout=CALL_TIMEOUT
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert raised.value.details() == "database unreachable"


def test_healthz_answers_ok(local_platform: Platform) -> None:
    response = local_platform.stub().Healthz(orchestrator_pb2.HealthzRequest(), timeout=10)
    assert response.status == "ok"


def test_the_documented_role_is_enough(
    orchestrator_server_factory: Callable[..., OrchestratorServer],
    files_server: FilesServer,
    kube: KubeCluster,
    analytics_crd: str,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    """Launch, read, list, watch, suspend, resume, resubmit and terminate as a service
    account holding only the verbs the README lists (get, list, watch, create, patch,
    delete on analytics)."""
    kubeconfig = service_account_kubeconfig(
        kube,
        namespace=kube_namespace,
        verbs=["get", "list", "watch", "create", "patch", "delete"],
        path=tmp_path / "kc",
    )
    server = _kube_server(
        orchestrator_server_factory, files_server, kubeconfig=kubeconfig, namespace=kube_namespace
    )
    stub = _stub(server)
    ids = [
        stub.LaunchService(launch_request(backend="kubernetes"), timeout=CALL_TIMEOUT).id
        for _ in range(5)
    ]
    listed = stub.ListServices(orchestrator_pb2.ListServicesRequest(), timeout=CALL_TIMEOUT)
    assert sorted(s.id for s in listed.services) == sorted(ids)
    first = next(
        iter(stub.WatchService(orchestrator_pb2.WatchServiceRequest(id=ids[0]), timeout=30))
    )
    assert first.status.phase == "pending"
    stub.TerminateService(orchestrator_pb2.TerminateServiceRequest(id=ids[0]), timeout=CALL_TIMEOUT)
    operator = KubeOperatorDouble(kube, kube_namespace)
    terminated = operator.resource(ids[0])
    assert terminated is not None and terminated["metadata"]["deletionTimestamp"]
    operator.finish_deletion(ids[0])  # the operator's finalizer, released as it would
    assert operator.resource_names() == set(ids[1:])

    scheduled = stub.LaunchService(
        launch_request(
            backend="kubernetes", ana={"job_type": "scheduled", "reps": 1, "schedule": "0 3 * * *"}
        ),
        timeout=CALL_TIMEOUT,
    ).id
    suspended = stub.SuspendService(
        orchestrator_pb2.SuspendServiceRequest(id=scheduled), timeout=CALL_TIMEOUT
    )
    assert suspended.service.suspended
    resumed = stub.ResumeService(
        orchestrator_pb2.ResumeServiceRequest(id=scheduled), timeout=CALL_TIMEOUT
    )
    assert not resumed.service.suspended
    copy = stub.ResubmitService(
        orchestrator_pb2.ResubmitServiceRequest(id=ids[0]), timeout=CALL_TIMEOUT
    ).id
    got = stub.GetService(orchestrator_pb2.GetServiceRequest(id=ids[0]), timeout=CALL_TIMEOUT)
    assert list(got.service.resubmissions) == [copy]
    with pytest.raises(grpc.RpcError) as refused:
        stub.RetryService(orchestrator_pb2.RetryServiceRequest(id=ids[1]), timeout=CALL_TIMEOUT)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "still pending" in str(refused.value.details())


def test_a_launch_that_asks_for_exposure_says_so_in_its_spec_where_the_platform_exposes(
    request: pytest.FixtureRequest, mongodb_uri: str, files_server: FilesServer, tmp_path: Path
) -> None:
    """``expose`` reaches the Analytics spec (the operator's cue for an Ingress) only on a
    platform that publishes services; the original's body stays without it."""
    server, operator = make_platform(
        backend="kubernetes",
        mongodb_uri=mongodb_uri,
        workdir=tmp_path,
        request=request,
        files=files_server,
        env_overrides={"DTPOC_ORCHESTRATOR_EXPOSE_SERVICES": "true"},
    )
    platform = Platform(
        orchestrator=server, files=files_server, operator=operator, mongodb_uri=mongodb_uri
    )
    try:
        exposed = platform.launch(port=8080, ana={"job_type": "persistent"}, expose=True)
        inside = platform.launch(port=8080, ana={"job_type": "persistent"})
        assert platform.operator.resource(exposed)["spec"]["expose"] is True  # type: ignore[index]
        assert "expose" not in platform.operator.resource(inside)["spec"]  # type: ignore[index]
        with pytest.raises(grpc.RpcError) as refused:
            platform.launch(ana={"job_type": "ondemand", "reps": 1}, expose=True)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (refused.value.details() or "").startswith("expose: ")
    finally:
        platform.shutdown()
