"""Fixtures of the orchestrator tests: a real orchestrator, Files and backend per test.

``platform`` is parametrized over both backends (``local``: Analytics
documents in FerretDB; ``kubernetes``: custom resources in the real
kube-apiserver), so every test that uses it runs against both.

No operator runs in these tests: :class:`OperatorDouble` is a named test
double that plays the operator's part by writing the Analytics status the
way the operator does (the status subresource in Kubernetes, the
``status`` field of the local document), and by finishing deletions in the
local store. Everything else - MongoDB, the API server, the Files service,
the orchestrator process - is the real thing.

Shared code (classes, constants, helpers) lives in :mod:`tests.orchestrator.helpers`;
this module holds only fixtures, so tests import from there, never from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dtpoc_local.databases import drop_databases
from dtpoc_local.kube import KubeCluster
from dtpoc_local.servers.files import FilesServer, start_files_server
from dtpoc_local.servers.operator import install_analytics_crd
from dtpoc_local.servers.orchestrator import start_orchestrator_server
from tests.orchestrator.helpers import (
    BACKENDS,
    KubeOperatorDouble,
    LocalOperatorDouble,
    OperatorDouble,
    Platform,
    make_platform,
)


@pytest.fixture(scope="session")
def analytics_crd(kube: KubeCluster) -> str:
    """The Analytics CRD, installed once per session."""
    return install_analytics_crd(kube)


@pytest.fixture(params=BACKENDS)
def platform(
    request: pytest.FixtureRequest,
    mongodb_uri: str,
    files_server: FilesServer,
    tmp_path: Path,
) -> Iterator[Platform]:
    """A fresh orchestrator on the parametrized backend, with Files and an operator double."""
    server, operator = make_platform(
        backend=request.param,
        mongodb_uri=mongodb_uri,
        workdir=tmp_path,
        request=request,
        files=files_server,
    )
    result = Platform(
        orchestrator=server, files=files_server, operator=operator, mongodb_uri=mongodb_uri
    )
    try:
        yield result
    finally:
        result.shutdown()


@pytest.fixture(scope="module", params=BACKENDS)
def shared_platform(
    request: pytest.FixtureRequest,
    mongodb_uri: str,
    module_files: FilesServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Platform]:
    """Like ``platform``, but one per module and backend: for tests that only look at the
    services they launch themselves (starting processes is most of a test's time)."""
    namespace = None
    kube: KubeCluster | None = None
    operator: OperatorDouble
    if request.param == "kubernetes":
        kube = request.getfixturevalue("kube")
        request.getfixturevalue("analytics_crd")
        namespace = kube.create_namespace(prefix="orch")
        server = start_orchestrator_server(
            mongodb_uri=mongodb_uri,
            workdir=tmp_path_factory.mktemp("orchestrator"),
            files_address=module_files.address,
            backend="kubernetes",
            kubeconfig_path=kube.kubeconfig_path,
            namespace=namespace,
        )
        operator = KubeOperatorDouble(kube, namespace)
    else:
        server = start_orchestrator_server(
            mongodb_uri=mongodb_uri,
            workdir=tmp_path_factory.mktemp("orchestrator"),
            files_address=module_files.address,
            backend="local",
        )
        operator = LocalOperatorDouble(mongodb_uri, server.database)
    result = Platform(
        orchestrator=server, files=module_files, operator=operator, mongodb_uri=mongodb_uri
    )
    try:
        yield result
    finally:
        result.shutdown()
        if kube is not None and namespace is not None:
            kube.delete_namespace(namespace)


@pytest.fixture(scope="module")
def module_files(
    mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FilesServer]:
    """A Files service shared by a module's tests (for tests that do not change it)."""
    server = start_files_server(mongodb_uri=mongodb_uri, workdir=tmp_path_factory.mktemp("files"))
    try:
        yield server
    finally:
        server.stop()
        drop_databases(mongodb_uri, {server.database})


@pytest.fixture(scope="module")
def local_platform(
    mongodb_uri: str, module_files: FilesServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """A local-backend orchestrator shared by a module's tests (validation and the like)."""
    server = start_orchestrator_server(
        mongodb_uri=mongodb_uri,
        workdir=tmp_path_factory.mktemp("orchestrator"),
        files_address=module_files.address,
        backend="local",
    )
    operator = LocalOperatorDouble(mongodb_uri, server.database)
    result = Platform(
        orchestrator=server, files=module_files, operator=operator, mongodb_uri=mongodb_uri
    )
    try:
        yield result
    finally:
        result.shutdown()
