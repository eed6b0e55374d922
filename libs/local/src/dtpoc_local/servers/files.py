"""Start ``dtpoc-files`` as a process: :func:`start_files_server` -> :class:`FilesServer`.

The server binds port 0 and logs the port it got (no race for a port),
against ``mongodb_uri`` with a database name no other server uses; ready when
gRPC health answers SERVING (deadline :data:`READY_TIMEOUT`). A
:class:`FilesServer` has ``.address`` (``"127.0.0.1:<port>"``), ``.pid`` (of
the server process itself, e.g. for ``/proc/<pid>/status``), ``.database``,
``.env`` (the variables it was started with), ``.log_path`` and ``.process``
(a :class:`dtpoc_local.processes.ServerProcess`). The usage check on delete is
off (``DTPOC_FILES_USAGE_CHECK=false``): no orchestrator runs next to it
unless ``env_overrides`` say so. Callers are authenticated with the run's
credentials (:mod:`dtpoc_local.credentials`): call it through
``credentials().channel(address, as_=...)``. The caller stops it; the
``files_server`` fixtures (``tests/platform/files.py``) do for tests.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from dtpoc_common import grpcauth
from dtpoc_local import grpcprocess, processes
from dtpoc_local.credentials import credentials
from dtpoc_local.databases import unique_db_name

READY_TIMEOUT = 120.0
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
    return processes.console_script("dtpoc-files")


def start_files_server(
    *,
    mongodb_uri: str,
    workdir: Path,
    env_overrides: dict[str, str] | None = None,
    wait_serving: bool = True,
) -> FilesServer:
    """Start ``dtpoc-files`` and wait until it serves (see the module docstring)."""
    database = unique_db_name("files")
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
