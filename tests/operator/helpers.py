"""Shared code of tests/operator: what its fixtures (conftest.py) and its tests use.

A named module rather than conftest.py, so that tests import it like any other
module (pytest loads conftest files itself; importing them by name is fragile).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from kubernetes.client.exceptions import ApiException

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc_common import replica_logs
from dtpoc_local import waiting
from dtpoc_local.kube import KubeCluster
from dtpoc_local.servers.operator import OperatorProcess

GROUP_PATH = "/apis/eng.cam.ac.uk/v1alpha1"
INIT_IMAGE = "registry.invalid/dtpoc/operator:test"
OUTPUT_PVC = "dtpoc-outputs-test"
WAIT = 60.0


def new_service_id() -> str:
    """A fresh 24-hex-digit id, shaped like the orchestrator's ObjectIds."""
    return uuid.uuid4().hex[:24]


def child_name(service_id: str) -> str:
    return f"ana-{service_id}"


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
        """Every output in Files whose metadata names ``service_id`` (as JSON dicts),
        without the replicas' stored logs (:meth:`logs`)."""
        return [f for f in self._stored(service_id) if not _is_log(f)]

    def logs(self, service_id: str) -> list[dict[str, Any]]:
        """The replicas' stored logs of ``service_id`` (metadata ``kind: log``)."""
        return [f for f in self._stored(service_id) if _is_log(f)]

    def _stored(self, service_id: str) -> list[dict[str, Any]]:
        answer = self.files.ListFiles(
            files_pb2.ListFilesRequest(service_id=service_id, limit=1000), timeout=20
        )
        return [
            json_format.MessageToDict(f, preserving_proto_field_name=True) for f in answer.files
        ]

    def content(self, file_id: str) -> bytes:
        chunks = self.files.GetFile(files_pb2.GetFileRequest(file_id=file_id), timeout=20)
        return b"".join(m.chunk for m in chunks if m.WhichOneof("payload") == "chunk")


def _is_log(stored: dict[str, Any]) -> bool:
    return bool(stored.get("metadata", {}).get(replica_logs.KIND_KEY) == replica_logs.KIND)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
