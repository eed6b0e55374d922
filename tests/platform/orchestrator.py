"""The ``orchestrator_server`` fixtures: a real ``dtpoc-orchestrator`` process for a test.

Fixtures:

``orchestrator_server_factory`` -> ``start(*, files_address, backend="local",
kubeconfig_path=None, namespace=None, wait_serving=True, args=(), **env_overrides)
-> OrchestratorServer``
    Starts ``dtpoc-orchestrator`` as a subprocess on a free loopback port (the
    server binds port 0 and logs the port it got) against the ``mongodb_uri``
    server with a database no other test uses, the Files service at
    ``files_address``, and the chosen backend: ``"local"`` (Analytics
    documents in ``<database>.analytics``) or ``"kubernetes"`` (custom
    resources in ``namespace``, reached with ``kubeconfig_path``; the
    Analytics CRD must be installed). Ready when gRPC health answers SERVING
    (deadline :data:`READY_TIMEOUT`); callers are authenticated with the
    run's credentials (:mod:`tests.realdeps.credentials`). ``env_overrides`` are more
    ``DTPOC_ORCHESTRATOR_*`` variables (e.g. ``DTPOC_ORCHESTRATOR_CREATING_GRACE_SECONDS``).
    ``args`` are command-line arguments (e.g. ``["--backend", "local"]``).
    Every server started is stopped (SIGTERM, then SIGKILL) after the test
    and its database dropped.

``orchestrator_server`` -> :class:`OrchestratorServer`
    One server with the local backend, next to the ``files_server`` fixture's
    Files service.

An :class:`OrchestratorServer` has ``.address`` (``"127.0.0.1:<port>"``),
``.pid``, ``.env`` (the variables it was started with), ``.database`` (of
its service records; the local store is the ``analytics`` collection of the
same database), ``.backend``, ``.namespace``, ``.log_path`` and ``.process``
(a :class:`tests.realdeps.processes.ServerProcess`).

:func:`start_orchestrator_server` does the same outside a fixture (for
module-scoped servers); the caller stops it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from dtpoc_common import grpcauth
from tests.platform import _grpcprocess as grpcprocess
from tests.platform.files import FilesServer
from tests.realdeps import mongodb, processes
from tests.realdeps.credentials import credentials

READY_TIMEOUT = 30.0
"""Seconds a server gets to log its port and answer health SERVING."""


@dataclass(frozen=True)
class OrchestratorServer:
    """One running ``dtpoc-orchestrator`` process (see the module docstring)."""

    address: str
    pid: int
    database: str
    env: dict[str, str]
    backend: str
    namespace: str
    log_path: Path
    process: processes.ServerProcess

    def stop(self) -> None:
        self.process.stop()


def orchestrator_executable() -> str:
    """The ``dtpoc-orchestrator`` console script of the environment running the tests."""
    return grpcprocess.executable("dtpoc-orchestrator")


def start_orchestrator_server(
    *,
    mongodb_uri: str,
    workdir: Path,
    files_address: str,
    backend: str = "local",
    kubeconfig_path: Path | str | None = None,
    namespace: str | None = None,
    wait_serving: bool = True,
    env_overrides: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> OrchestratorServer:
    """Start ``dtpoc-orchestrator`` and wait until it serves (see the module docstring)."""
    if backend == "kubernetes" and (kubeconfig_path is None or namespace is None):
        raise ValueError("the kubernetes backend needs kubeconfig_path and namespace")
    env = {
        "DTPOC_MONGODB_URI": mongodb_uri,
        "DTPOC_ORCHESTRATOR_LISTEN": "127.0.0.1:0",
        "DTPOC_ORCHESTRATOR_DATABASE": mongodb.unique_db_name("orch"),
        "DTPOC_ORCHESTRATOR_BACKEND": backend,
        "DTPOC_ORCHESTRATOR_NAMESPACE": namespace or "default",
        "DTPOC_ORCHESTRATOR_FILES_ADDRESS": files_address,
        "DTPOC_ORCHESTRATOR_FILES_TIMEOUT_SECONDS": "5",
        "DTPOC_ORCHESTRATOR_KUBE_TIMEOUT_SECONDS": "10",
        "DTPOC_ORCHESTRATOR_WATCH_POLL_SECONDS": "0.2",
        "DTPOC_ORCHESTRATOR_LOG_LEVEL": "INFO",
        **credentials().server_env("DTPOC_ORCHESTRATOR", grpcauth.ORCHESTRATOR),
        **({"DTPOC_ORCHESTRATOR_KUBECONFIG": str(kubeconfig_path)} if kubeconfig_path else {}),
        **(env_overrides or {}),
    }
    database = env["DTPOC_ORCHESTRATOR_DATABASE"]
    log_path = workdir / f"dtpoc-orchestrator-{database}-{uuid.uuid4().hex[:6]}.log"
    server, address = grpcprocess.start(
        name="dtpoc-orchestrator",
        argv=[orchestrator_executable(), *args],
        env=env,
        workdir=workdir,
        log_path=log_path,
        wait_serving=wait_serving,
        timeout=READY_TIMEOUT,
    )
    return OrchestratorServer(
        address=address,
        pid=server.pid,
        database=database,
        env=env,
        backend=env["DTPOC_ORCHESTRATOR_BACKEND"],
        namespace=env["DTPOC_ORCHESTRATOR_NAMESPACE"],
        log_path=log_path,
        process=server,
    )


# Kept importable from here: the orchestrator tests use it.
drop_databases = grpcprocess.drop_databases


@pytest.fixture
def orchestrator_server_factory(
    mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., OrchestratorServer]]:
    """Start ``dtpoc-orchestrator`` processes (module docstring)."""
    started: list[OrchestratorServer] = []
    workdir = tmp_path_factory.mktemp("orchestrator-server")

    def start(
        *,
        files_address: str,
        backend: str = "local",
        kubeconfig_path: Path | str | None = None,
        namespace: str | None = None,
        wait_serving: bool = True,
        args: Sequence[str] = (),
        **env_overrides: str,
    ) -> OrchestratorServer:
        server = start_orchestrator_server(
            mongodb_uri=mongodb_uri,
            workdir=workdir,
            files_address=files_address,
            backend=backend,
            kubeconfig_path=kubeconfig_path,
            namespace=namespace,
            wait_serving=wait_serving,
            env_overrides=env_overrides,
            args=args,
        )
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
        drop_databases(mongodb_uri, {server.database for server in started})


@pytest.fixture
def orchestrator_server(
    orchestrator_server_factory: Callable[..., OrchestratorServer], files_server: FilesServer
) -> OrchestratorServer:
    """A local-backend ``dtpoc-orchestrator`` next to ``files_server`` (module docstring)."""
    return orchestrator_server_factory(files_address=files_server.address)
