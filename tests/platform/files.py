"""The ``files_server`` fixture: a real ``dtpoc-files`` process for a test.

Fixtures:

``files_server`` -> :class:`FilesServer`
    ``dtpoc-files`` started as a subprocess on a free loopback port (the
    server binds port 0 and logs the port it got; no race for a port) against
    the ``mongodb_uri`` server, with a database name no other test uses.
    Ready when gRPC health answers SERVING (deadline :data:`READY_TIMEOUT`).
    Attributes: ``.address`` (``"127.0.0.1:<port>"``), ``.pid`` (of the
    server process itself, e.g. for ``/proc/<pid>/status``), ``.database``,
    ``.env`` (the environment variables it was started with),
    ``.log_path``, ``.process`` (a :class:`tests.realdeps.processes.ServerProcess`).
    The usage check on delete is off (``DTPOC_FILES_USAGE_CHECK=false``): no
    orchestrator runs next to it. Callers are authenticated with the run's
    credentials (:mod:`tests.realdeps.credentials`): call it through
    ``credentials().channel(address, as_=...)``. Stopped (SIGTERM, then SIGKILL) after the
    test, and its database dropped.

``files_server_factory`` -> ``start(**env_overrides) -> FilesServer``
    Starts more servers in the same test, e.g. with a small upload limit,
    another database (``DTPOC_FILES_DATABASE``), an orchestrator address, or
    an unreachable MongoDB URI. Pass ``wait_serving=False`` to skip the health
    wait. All are stopped after the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dtpoc_common import grpcauth
from tests.platform import _grpcprocess as grpcprocess
from tests.realdeps import mongodb, processes
from tests.realdeps.credentials import credentials

READY_TIMEOUT = 30.0
"""Seconds a server gets to log its port and answer health SERVING."""


@dataclass(frozen=True)
class FilesServer:
    """One running ``dtpoc-files`` process (see the module docstring)."""

    address: str
    pid: int
    database: str
    env: dict[str, str]
    log_path: Path
    process: processes.ServerProcess

    def stop(self) -> None:
        self.process.stop()


def files_executable() -> str:
    """The ``dtpoc-files`` console script of the environment running the tests."""
    return grpcprocess.executable("dtpoc-files")


def start_files_server(
    *,
    mongodb_uri: str,
    workdir: Path,
    env_overrides: dict[str, str] | None = None,
    wait_serving: bool = True,
) -> FilesServer:
    """Start ``dtpoc-files`` and wait until it serves (see the module docstring)."""
    database = mongodb.unique_db_name("files")
    env = {
        "DTPOC_MONGODB_URI": mongodb_uri,
        "DTPOC_FILES_LISTEN": "127.0.0.1:0",
        "DTPOC_FILES_DATABASE": database,
        "DTPOC_FILES_USAGE_CHECK": "false",
        "DTPOC_FILES_ORCHESTRATOR_ADDRESS": "",
        "DTPOC_FILES_LOG_LEVEL": "INFO",
        **credentials().server_env("DTPOC_FILES", grpcauth.FILES),
        "DTPOC_FILES_FETCH_KEY_FILE": str(credentials().fetch_key_file),
        **(env_overrides or {}),
    }
    database = env["DTPOC_FILES_DATABASE"]
    log_path = workdir / f"dtpoc-files-{database}-{uuid.uuid4().hex[:6]}.log"
    server, address = grpcprocess.start(
        name="dtpoc-files",
        argv=[files_executable()],
        env=env,
        workdir=workdir,
        log_path=log_path,
        wait_serving=wait_serving,
        timeout=READY_TIMEOUT,
    )
    return FilesServer(
        address=address,
        pid=server.pid,
        database=database,
        env=env,
        log_path=log_path,
        process=server,
    )


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
        grpcprocess.drop_databases(mongodb_uri, {server.database for server in started})


@pytest.fixture
def files_server(files_server_factory: Callable[..., FilesServer]) -> FilesServer:
    """A ``dtpoc-files`` process on its own database (module docstring)."""
    return files_server_factory()
