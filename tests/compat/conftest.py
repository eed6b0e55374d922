"""The whole REST platform as a client of the original sees it.

``shared_platform`` is started once per module (the generated-request runs
share one, so that 2,000 requests stay within a couple of minutes);
``platform`` is its HTTP client of the gateway. Once per module, not per
test, because the start is most of these tests' time and each test works on
uploads and services of its own (found by id, random contents).

Real processes: a Files service, the Orchestrator with the Kubernetes
backend (Analytics custom resources on the real apiserver; original clients
send no ``command``, which only the local runtime needs), a second
Files service on the same database that asks the orchestrator before it
deletes (the deployed arrangement), and the gateway in front. No operator
runs, so launched services stay pending; the operator's side of the contract
is covered by tests/e2e and tests/operator.

Shared code (classes, constants, helpers) lives in :mod:`tests.compat.helpers`;
this module holds only fixtures, so tests import from there, never from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest

from dtpoc_local.databases import drop_databases
from dtpoc_local.kube import KubeCluster
from dtpoc_local.servers.files import start_files_server
from dtpoc_local.servers.gateway import start_gateway
from dtpoc_local.servers.operator import install_analytics_crd
from dtpoc_local.servers.orchestrator import start_orchestrator_server
from tests.compat.helpers import SharedPlatform


@pytest.fixture(scope="module")
def shared_platform(
    mongodb_uri: str, kube: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedPlatform]:
    """The arrangement of ``platform``, started once for a test module."""
    install_analytics_crd(kube)
    namespace = kube.create_namespace()
    workdir = tmp_path_factory.mktemp("shared-platform")
    databases: set[str] = set()
    with contextlib.ExitStack() as stack:
        stack.callback(kube.delete_namespace, namespace)
        stack.callback(drop_databases, mongodb_uri, databases)
        files_for_orchestrator = start_files_server(mongodb_uri=mongodb_uri, workdir=workdir)
        databases.add(files_for_orchestrator.database)
        stack.callback(files_for_orchestrator.stop)
        orchestrator = start_orchestrator_server(
            mongodb_uri=mongodb_uri,
            workdir=workdir,
            files_address=files_for_orchestrator.address,
            backend="kubernetes",
            kubeconfig_path=kube.kubeconfig_path,
            namespace=namespace,
        )
        databases.add(orchestrator.database)
        stack.callback(orchestrator.stop)
        files = start_files_server(
            mongodb_uri=mongodb_uri,
            workdir=workdir,
            env_overrides={
                "DTPOC_FILES_DATABASE": files_for_orchestrator.database,
                "DTPOC_FILES_USAGE_CHECK": "true",
                "DTPOC_FILES_ORCHESTRATOR_ADDRESS": orchestrator.address,
            },
        )
        stack.callback(files.stop)
        gateway = start_gateway(
            workdir=workdir,
            files_address=files.address,
            orchestrator_address=orchestrator.address,
            env={"DTPOC_GATEWAY_AUTH_DISABLED": "true"},
        )
        stack.callback(gateway.stop)
        client = stack.enter_context(httpx.Client(base_url=gateway.base_url, timeout=60.0))
        yield SharedPlatform(
            client=client, files_address=files.address, kube=kube, namespace=namespace
        )


@pytest.fixture(scope="module")
def platform(shared_platform: SharedPlatform) -> httpx.Client:
    """An HTTP client whose base URL is the gateway's root (no prefix), for the module."""
    return shared_platform.client
