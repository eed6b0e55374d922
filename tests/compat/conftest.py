"""The whole REST platform as a client of the original sees it.

Real processes: a Files service, the Orchestrator with the Kubernetes
backend (Analytics custom resources on the real apiserver; original clients
send no ``command``, which only the local runtime needs), a second
Files service on the same database that asks the orchestrator before it
deletes (the deployed arrangement), and the gateway in front. No operator
runs, so launched services stay pending; the operator's side of the contract
is covered by tests/e2e and tests/operator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.platform.files import FilesServer
from tests.platform.operator import install_analytics_crd
from tests.platform.orchestrator import OrchestratorServer
from tests.realdeps.kube import KubeCluster

PREFIX = "/api/orchestrator/v1alpha1"


@pytest.fixture
def platform(
    files_server_factory: Callable[..., FilesServer],
    orchestrator_server_factory: Callable[..., OrchestratorServer],
    gateway_server: Callable[..., Any],
    kube: KubeCluster,
    kube_namespace: str,
) -> Iterator[httpx.Client]:
    """An HTTP client whose base URL is the gateway's root (no prefix)."""
    install_analytics_crd(kube)
    files_for_orchestrator = files_server_factory()
    orchestrator = orchestrator_server_factory(
        files_address=files_for_orchestrator.address,
        backend="kubernetes",
        kubeconfig_path=kube.kubeconfig_path,
        namespace=kube_namespace,
    )
    files = files_server_factory(
        DTPOC_FILES_DATABASE=files_for_orchestrator.database,
        DTPOC_FILES_USAGE_CHECK="true",
        DTPOC_FILES_ORCHESTRATOR_ADDRESS=orchestrator.address,
    )
    gateway = gateway_server(files_address=files.address, orchestrator_address=orchestrator.address)
    with httpx.Client(base_url=gateway.base_url, timeout=60.0) as client:
        yield client
