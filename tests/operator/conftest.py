"""Fixtures and helpers of the operator tests.

Kubernetes tests run the operator as its own ServiceAccount with exactly the
Role of ``infra/rbac/operator-role.yaml`` (a TokenRequest token), against the
real apiserver and controller-manager; no kubelet exists, so the tests play
its part with ``kubelet_double``. Outputs go to the real Files service.

Shared code (classes, constants, helpers) lives in :mod:`tests.operator.helpers`;
this module holds only fixtures, so tests import from there, never from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dtpoc.files.v1alpha1 import files_pb2_grpc
from dtpoc_local.credentials import credentials
from dtpoc_local.kube import KubeCluster
from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.operator import OperatorProcess, install_analytics_crd, operator_kubeconfig
from tests.operator.helpers import INIT_IMAGE, OUTPUT_PVC, KubeOperator


@pytest.fixture(scope="session")
def analytics_crd(kube: KubeCluster) -> str:
    return install_analytics_crd(kube)


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
