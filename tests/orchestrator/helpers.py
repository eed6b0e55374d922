"""Shared code of tests/orchestrator: what its fixtures (conftest.py) and its tests use.

A named module rather than conftest.py, so that tests import it like any other
module (pytest loads conftest files itself; importing them by name is fragile).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pymongo
import pymongo.errors
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2_grpc
from dtpoc_common import analytics, changes, grpcauth
from dtpoc_local.credentials import credentials
from dtpoc_local.databases import drop_databases
from dtpoc_local.kube import KubeCluster
from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.orchestrator import OrchestratorServer, start_orchestrator_server
from tests.orchestrator.messages import launch_request as launch_request
from tests.orchestrator.messages import status_dict as status_dict
from tests.orchestrator.messages import value_to_python as value_to_python

CALL_TIMEOUT = 20.0
ANALYTICS_PATH = "/apis/eng.cam.ac.uk/v1alpha1/namespaces/{ns}/analytics"

BACKENDS = ("local", "kubernetes")


# --- the operator double ----------------------------------------------------------------------


class OperatorDouble:
    """Test double of the operator: writes Analytics status as the operator would."""

    backend: str

    def write_status(self, service_id: str, status: dict[str, Any]) -> None:
        raise NotImplementedError

    def resource(self, service_id: str) -> dict[str, Any] | None:
        """The Analytics resource (keys as in Kubernetes), None when gone."""
        raise NotImplementedError

    def finish_deletion(self, service_id: str) -> None:
        """What the operator does once a deleted service's replicas are stopped."""
        raise NotImplementedError

    def delete_behind_our_back(self, service_id: str) -> None:
        """Remove the resource as someone with kubectl (or a database shell) would."""
        raise NotImplementedError

    def resource_names(self) -> set[str]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the double holds (nothing unless a subclass says so)."""


class LocalOperatorDouble(OperatorDouble):
    """Writes as the local operator does: the document's ``status`` (or its removal), then
    the service id in the status journal, which the orchestrator's read cache follows."""

    backend = "local"

    def __init__(self, mongodb_uri: str, database: str) -> None:
        self._client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongodb_uri)
        self._collection = self._client[database]["analytics"]
        self._journal = self._client[database][changes.status_journal_name("analytics")]
        self._next: int | None = None

    def _announce(self, service_id: str) -> None:
        """:meth:`dtpoc_common.changes.ChangeWriter.append`, synchronously."""
        if self._next is None:
            head = self._journal.find_one({"_id": changes.HEAD_ID})
            self._next = int(head["seq"]) + 1 if head is not None else 1
        while True:
            seq, self._next = self._next, self._next + 1
            try:
                self._journal.insert_one(
                    {"_id": changes.entry_id(seq), "service_id": service_id, "at": 0.0}
                )
            except pymongo.errors.DuplicateKeyError:
                continue
            return

    def write_status(self, service_id: str, status: dict[str, Any]) -> None:
        result = self._collection.update_one(
            {"_id": service_id}, {"$set": {"status": analytics.escape_keys(status)}}
        )
        assert result.matched_count == 1, f"no local Analytics document {service_id}"
        self._announce(service_id)

    def resource(self, service_id: str) -> dict[str, Any] | None:
        document = self._collection.find_one({"_id": service_id})
        return analytics.resource_from_local_document(document) if document else None

    def finish_deletion(self, service_id: str) -> None:
        self._collection.delete_one(
            {"_id": service_id, analytics.LOCAL_DELETION_TIMESTAMP: {"$exists": True}}
        )
        self._announce(service_id)

    def delete_behind_our_back(self, service_id: str) -> None:
        self._collection.delete_one({"_id": service_id})
        self._announce(service_id)

    def resource_names(self) -> set[str]:
        return {str(d["_id"]) for d in self._collection.find({}, {"_id": 1})}

    def close(self) -> None:
        self._client.close()


class KubeOperatorDouble(OperatorDouble):
    backend = "kubernetes"

    def __init__(self, kube: KubeCluster, namespace: str) -> None:
        self._kube = kube
        self._path = ANALYTICS_PATH.format(ns=namespace)

    def write_status(self, service_id: str, status: dict[str, Any]) -> None:
        self._kube.request(
            "PATCH",
            f"{self._path}/{service_id}/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    def resource(self, service_id: str) -> dict[str, Any] | None:
        try:
            return self._kube.request("GET", f"{self._path}/{service_id}")
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def finish_deletion(self, service_id: str) -> None:
        """Release the finalizer (if held); the API server then removes the resource."""
        try:
            self._kube.request(
                "PATCH",
                f"{self._path}/{service_id}",
                body={"metadata": {"finalizers": None}},
                content_type="application/merge-patch+json",
            )
        except ApiException as error:
            if error.status != 404:
                raise

    def delete_behind_our_back(self, service_id: str) -> None:
        self._kube.request("DELETE", f"{self._path}/{service_id}")

    def resource_names(self) -> set[str]:
        items = self._kube.request("GET", self._path).get("items", [])
        return {str(item["metadata"]["name"]) for item in items}


def now_rfc3339(offset_seconds: float = 0.0) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_seconds)
    return analytics.format_time(moment)


# --- the platform under test --------------------------------------------------------------------


@dataclass
class Platform:
    """An orchestrator process, its Files service, its backend and the operator double."""

    orchestrator: OrchestratorServer
    files: FilesServer
    operator: OperatorDouble
    mongodb_uri: str
    channels: dict[str, grpc.Channel] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return self.orchestrator.backend

    def _channel(self, address: str, *, as_: str = grpcauth.GATEWAY) -> grpc.Channel:
        # One channel per address and caller, closed with the platform: channels left
        # open (reconnecting) while a fixture forks can deadlock gRPC's fork handler.
        key = f"{as_}@{address}"
        if key not in self.channels:
            self.channels[key] = credentials().channel(address, as_=as_)
        return self.channels[key]

    def stub(self, *, as_: str = grpcauth.GATEWAY) -> orchestrator_pb2_grpc.OrchestratorServiceStub:
        """The orchestrator as ``as_`` calls it (the gateway: what people may do)."""
        return orchestrator_pb2_grpc.OrchestratorServiceStub(
            self._channel(self.orchestrator.address, as_=as_)
        )

    def files_stub(self, *, as_: str = grpcauth.GATEWAY) -> files_pb2_grpc.FilesServiceStub:
        return files_pb2_grpc.FilesServiceStub(self._channel(self.files.address, as_=as_))

    def upload(
        self,
        filename: str,
        data: bytes,
        *,
        metadata: dict[str, Any] | None = None,
        as_: str = grpcauth.GATEWAY,
    ) -> str:
        """Store a file in the real Files service as ``as_`` does; answers its id."""
        header = files_pb2.UploadFileHeader(filename=filename)
        if metadata:
            header.metadata.update(metadata)
        # A unique label keeps identical bytes of different tests apart.
        header.metadata.update({"test_nonce": uuid.uuid4().hex})
        messages = [
            files_pb2.UploadFileRequest(header=header),
            files_pb2.UploadFileRequest(chunk=data),
            files_pb2.UploadFileRequest(finish=True),
        ]
        response = self.files_stub(as_=as_).UploadFile(iter(messages), timeout=CALL_TIMEOUT)
        return str(response.file_id)

    def upload_output(self, service_id: str, replica_index: int, path: str, data: bytes) -> str:
        """Store a replica's output file as the operator's output collector does."""
        return self.upload(
            path.rsplit("/", 1)[-1],
            data,
            metadata={"service_id": service_id, "replica_index": replica_index, "path": path},
            as_=grpcauth.OPERATOR,  # output labels are the operator's alone
        )

    def launch(self, **fields: Any) -> str:
        """Launch with sensible defaults for the backend; answers the service id."""
        request = launch_request(backend=self.backend, **fields)
        return str(self.stub().LaunchService(request, timeout=CALL_TIMEOUT).id)

    def records(self) -> pymongo.collection.Collection[dict[str, Any]]:
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(self.mongodb_uri)
        return client[self.orchestrator.database]["services"]

    def close(self) -> None:
        while self.channels:
            self.channels.popitem()[1].close()

    def shutdown(self) -> None:
        """End of a fixture: channels, the orchestrator, the operator double, the database."""
        self.close()
        self.orchestrator.stop()
        self.operator.close()
        drop_databases(self.mongodb_uri, {self.orchestrator.database})


def make_platform(
    *,
    backend: str,
    mongodb_uri: str,
    workdir: Path,
    request: pytest.FixtureRequest,
    files: FilesServer,
    env_overrides: dict[str, str] | None = None,
) -> tuple[OrchestratorServer, OperatorDouble]:
    if backend == "local":
        server = start_orchestrator_server(
            mongodb_uri=mongodb_uri,
            workdir=workdir,
            files_address=files.address,
            backend="local",
            env_overrides=env_overrides,
        )
        return server, LocalOperatorDouble(mongodb_uri, server.database)
    kube: KubeCluster = request.getfixturevalue("kube")
    request.getfixturevalue("analytics_crd")
    namespace: str = request.getfixturevalue("kube_namespace")
    server = start_orchestrator_server(
        mongodb_uri=mongodb_uri,
        workdir=workdir,
        files_address=files.address,
        backend="kubernetes",
        kubeconfig_path=kube.kubeconfig_path,
        namespace=namespace,
        env_overrides=env_overrides,
    )
    return server, KubeOperatorDouble(kube, namespace)


def service_account_kubeconfig(
    kube: KubeCluster, *, namespace: str, verbs: list[str], path: Path
) -> Path:
    """A kubeconfig for a new service account allowed only ``verbs`` on analytics.

    The token comes from the real TokenRequest API and RBAC is the API
    server's own, so a refusal is exactly what a badly bound orchestrator
    would meet.
    """
    name = f"limited-{uuid.uuid4().hex[:6]}"
    kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
    )
    kube.request(
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
        body={
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name},
            "rules": [{"apiGroups": ["eng.cam.ac.uk"], "resources": ["analytics"], "verbs": verbs}],
        },
    )
    kube.request(
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
        body={
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    )
    token = kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )["status"]["token"]
    admin = yaml.safe_load(kube.kubeconfig_path.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [
            {"name": name, "context": {"cluster": admin["clusters"][0]["name"], "user": name}}
        ],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def unreachable_kubeconfig(kube: KubeCluster, *, port: int, path: Path) -> Path:
    """The admin kubeconfig pointed at a loopback port where nothing listens."""
    config = yaml.safe_load(kube.kubeconfig_path.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
