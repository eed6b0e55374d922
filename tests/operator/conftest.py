"""Fixtures and helpers of the operator tests.

Kubernetes tests run the operator as its own ServiceAccount with exactly the
Role of ``infra/rbac/operator-role.yaml`` (a TokenRequest token), against the
real apiserver and controller-manager; no kubelet exists, so the tests play
its part with ``kubelet_double``. Outputs go to the real Files service.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from kubernetes.client.rest import ApiException

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc_local import waiting
from dtpoc_local.credentials import credentials
from dtpoc_local.kube import KubeCluster
from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.operator import OperatorProcess, install_analytics_crd, operator_kubeconfig

GROUP_PATH = "/apis/eng.cam.ac.uk/v1alpha1"
INIT_IMAGE = "registry.invalid/dtpoc/operator:test"
OUTPUT_PVC = "dtpoc-outputs-test"
WAIT = 60.0


def new_service_id() -> str:
    """A fresh 24-hex-digit id, shaped like the orchestrator's ObjectIds."""
    return uuid.uuid4().hex[:24]


def child_name(service_id: str) -> str:
    return f"ana-{service_id}"


@pytest.fixture(scope="session")
def analytics_crd(kube: KubeCluster) -> str:
    return install_analytics_crd(kube)


@dataclass
class KubeOperator:
    """A running operator on a test namespace, and helpers to drive and read it."""

    kube: KubeCluster
    namespace: str
    output_root: Path
    process: OperatorProcess
    files: files_pb2_grpc.FilesServiceStub

    # --- Analytics ---------------------------------------------------------------------------

    def analytics_path(self, name: str = "") -> str:
        base = f"{GROUP_PATH}/namespaces/{self.namespace}/analytics"
        return f"{base}/{name}" if name else base

    def create(self, spec: dict[str, Any], service_id: str | None = None) -> str:
        service_id = service_id or new_service_id()
        self.kube.request(
            "POST",
            self.analytics_path(),
            body={
                "apiVersion": "eng.cam.ac.uk/v1alpha1",
                "kind": "Analytics",
                "metadata": {"name": service_id},
                "spec": spec,
            },
        )
        return service_id

    def get(self, service_id: str) -> dict[str, Any] | None:
        try:
            return self.kube.request("GET", self.analytics_path(service_id))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def status(self, service_id: str) -> dict[str, Any]:
        obj = self.get(service_id)
        return dict((obj or {}).get("status") or {})

    def wait_status(
        self,
        service_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = WAIT,
    ) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def check() -> bool:
            status = self.status(service_id)
            found[:] = [status]
            return predicate(status)

        waiting.wait_for(
            check,
            timeout=timeout,
            what=f"Analytics {service_id}: {what}",
            details=lambda: (
                f"last status: {found[-1] if found else None}\n" + self.process.process.log_tail(30)
            ),
        )
        return found[-1]

    def replica(self, status: dict[str, Any], index: int, run: str | None = None) -> dict[str, Any]:
        for entry in status.get("replicas") or []:
            if entry.get("index", 0) == index and (run is None or entry.get("run") == run):
                return dict(entry)
        return {}

    # --- children ----------------------------------------------------------------------------

    def job(self, name: str) -> dict[str, Any] | None:
        try:
            return self.kube.request(
                "GET", f"/apis/batch/v1/namespaces/{self.namespace}/jobs/{name}"
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def wait_job(self, name: str) -> dict[str, Any]:
        return waiting.wait_for(
            lambda: self.job(name),
            timeout=WAIT,
            what=f"Job {self.namespace}/{name}",
            details=lambda: self.process.process.log_tail(30),
        )

    def jobs(self) -> list[dict[str, Any]]:
        answer = self.kube.request("GET", f"/apis/batch/v1/namespaces/{self.namespace}/jobs")
        return list(answer.get("items") or [])

    # --- Files -------------------------------------------------------------------------------

    def upload(self, name: str, content: bytes) -> str:
        def requests() -> Iterator[files_pb2.UploadFileRequest]:
            yield files_pb2.UploadFileRequest(header=files_pb2.UploadFileHeader(filename=name))
            yield files_pb2.UploadFileRequest(chunk=content)
            yield files_pb2.UploadFileRequest(finish=True)

        return str(self.files.UploadFile(requests(), timeout=20).file_id)

    def outputs(self, service_id: str) -> list[dict[str, Any]]:
        """Every file in Files whose metadata names ``service_id`` (as JSON dicts)."""
        answer = self.files.ListFiles(
            files_pb2.ListFilesRequest(service_id=service_id, limit=1000), timeout=20
        )
        return [
            json_format.MessageToDict(f, preserving_proto_field_name=True) for f in answer.files
        ]

    def content(self, file_id: str) -> bytes:
        chunks = self.files.GetFile(files_pb2.GetFileRequest(file_id=file_id), timeout=20)
        return b"".join(m.chunk for m in chunks if m.WhichOneof("payload") == "chunk")


@pytest.fixture
def files_stub(files_server: FilesServer) -> Iterator[files_pb2_grpc.FilesServiceStub]:
    with credentials().channel(files_server.address) as channel:
        yield files_pb2_grpc.FilesServiceStub(channel)


@pytest.fixture
def kube_operator_factory(
    kube: KubeCluster,
    kube_namespace: str,
    analytics_crd: str,
    files_server: FilesServer,
    files_stub: files_pb2_grpc.FilesServiceStub,
    operator_process: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> Callable[..., KubeOperator]:
    """Start an operator on ``kube_namespace`` as its ServiceAccount (module docs)."""

    def start(**options: Any) -> KubeOperator:
        kubeconfig = operator_kubeconfig(kube, kube_namespace, tmp_path / "operator.kubeconfig")
        output_root = tmp_path / "outputs"
        env = {
            "DTPOC_OPERATOR_IMAGE": INIT_IMAGE,
            "DTPOC_OPERATOR_OUTPUT_PVC": OUTPUT_PVC,
            "DTPOC_OPERATOR_RESYNC_SECONDS": "5",
            "DTPOC_OPERATOR_TERMINATE_GRACE_SECONDS": "3",
            **options.pop("env", {}),
        }
        process = operator_process(
            runtime="kubernetes",
            kubeconfig=kubeconfig,
            namespace=kube_namespace,
            files_address=files_server.address,
            output_root=output_root,
            env=env,
            **options,
        )
        return KubeOperator(
            kube=kube,
            namespace=kube_namespace,
            output_root=output_root,
            process=process,
            files=files_stub,
        )

    return start


@pytest.fixture
def kube_operator(kube_operator_factory: Callable[..., KubeOperator]) -> KubeOperator:
    """One operator, started (see :func:`kube_operator_factory`)."""
    return kube_operator_factory()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
