"""The ``orchestrator_server`` fixtures: a real ``dtpoc-orchestrator`` process for a test.

``orchestrator_server_factory`` -> ``start(*, files_address, backend="local",
kubeconfig_path=None, namespace=None, wait_serving=True, args=(), **env_overrides)
-> OrchestratorServer``
    Starts ``dtpoc-orchestrator`` with
    :func:`dtpoc_local.servers.orchestrator.start_orchestrator_server` against
    the ``mongodb_uri`` server (see there for the options). Every server
    started is stopped (SIGTERM, then SIGKILL) after the test and its
    database dropped.

``orchestrator_server`` -> :class:`~dtpoc_local.servers.orchestrator.OrchestratorServer`
    One server with the local backend, next to the ``files_server`` fixture's
    Files service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from dtpoc_local.databases import drop_databases
from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.orchestrator import OrchestratorServer, start_orchestrator_server


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
