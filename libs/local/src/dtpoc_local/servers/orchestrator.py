"""Start ``dtpoc-orchestrator`` as a process: :func:`start_orchestrator_server`.

The server binds port 0 and logs the port it got, against ``mongodb_uri``
with a database no other server uses, the Files service at
``files_address``, and the chosen backend: ``"local"`` (Analytics documents in
``<database>.analytics``) or ``"kubernetes"`` (custom resources in
``namespace``, reached with ``kubeconfig_path``; the Analytics CRD must be
installed). Ready when gRPC health answers SERVING (deadline
:data:`READY_TIMEOUT`); callers are authenticated with the run's credentials
(:mod:`dtpoc_local.credentials`). ``env_overrides`` are more
``DTPOC_ORCHESTRATOR_*`` variables, ``args`` command-line arguments.

An :class:`OrchestratorServer` has ``.address`` (``"127.0.0.1:<port>"``),
``.pid``, ``.env`` (the variables it was started with), ``.database`` (of
its service records; the local store is the ``analytics`` collection of the
same database), ``.backend``, ``.namespace``, ``.log_path`` and ``.process``
(a :class:`dtpoc_local.processes.ServerProcess`). The caller stops it; the
``orchestrator_server`` fixtures (``tests/platform/orchestrator.py``) do for tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dtpoc_common import grpcauth
from dtpoc_local import grpcprocess, processes
from dtpoc_local.credentials import credentials
from dtpoc_local.databases import unique_db_name

READY_TIMEOUT = 120.0
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
    return processes.console_script("dtpoc-orchestrator")


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
        "DTPOC_ORCHESTRATOR_DATABASE": unique_db_name("orch"),
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
