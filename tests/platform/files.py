"""The ``files_server`` fixtures: a real ``dtpoc-files`` process for a test.

``files_server`` -> :class:`~dtpoc_local.servers.files.FilesServer`
    ``dtpoc-files`` started by :func:`dtpoc_local.servers.files.start_files_server`
    against the ``mongodb_uri`` server, on a database no other test uses.
    Stopped (SIGTERM, then SIGKILL) after the test, and its database dropped.

``files_server_factory`` -> ``start(**env_overrides) -> FilesServer``
    Starts more servers in the same test, e.g. with a small upload limit,
    another database (``DTPOC_FILES_DATABASE``), an orchestrator address, or
    an unreachable MongoDB URI. Pass ``wait_serving=False`` to skip the health
    wait. All are stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from dtpoc_local.databases import drop_databases
from dtpoc_local.servers.files import FilesServer, start_files_server


@pytest.fixture
def files_server_factory(
    mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., FilesServer]]:
    """Start ``dtpoc-files`` processes with environment overrides (module docstring)."""
    started: list[FilesServer] = []
    workdir = tmp_path_factory.mktemp("files-server")

    def start(*, wait_serving: bool = True, **env_overrides: str) -> FilesServer:
        server = start_files_server(
            mongodb_uri=mongodb_uri,
            workdir=workdir,
            env_overrides=env_overrides,
            wait_serving=wait_serving,
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
def files_server(files_server_factory: Callable[..., FilesServer]) -> FilesServer:
    """A ``dtpoc-files`` process on its own database (module docstring)."""
    return files_server_factory()
