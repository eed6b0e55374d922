"""Start ``dtpoc-gateway`` as a process: :func:`start_gateway` -> :class:`GatewayServer`.

Started on a free loopback port (retried when another process takes it
first) and ready once the gateway's own ``/readyz`` answers 200 (deadline
:data:`READY_TIMEOUT`) — readiness of the gateway itself, independent of any
backend, so it may start before, after or without its backends. Options
(keyword-only): ``files_address`` / ``orchestrator_address`` (backend
``host:port``); ``backends`` (full proto service name -> ``host:port``);
``token_hashes`` (accepted bearer-token SHA-256 hashes; when empty,
authentication is explicitly disabled, as in the local run); ``env`` (any
other ``DTPOC_GATEWAY_*`` variables; they win).

:class:`GatewayServer` attributes: ``.base_url`` (``http://127.0.0.1:<port>``),
``.pid`` (the gateway process itself), ``.env``, ``.log_path``, ``.process``
(a :class:`dtpoc_local.processes.ServerProcess`), and ``.url(path)``. The
caller stops it; the ``gateway_server`` fixture (``tests/platform/gateway.py``)
does for tests.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from dtpoc_common import grpcauth
from dtpoc_local import ports, processes
from dtpoc_local.credentials import credentials

READY_TIMEOUT = 120.0
"""Seconds a gateway gets to answer ``/readyz``."""

_STARTS = 3
"""Attempts when another process takes the chosen port first."""


@dataclass(frozen=True)
class GatewayServer:
    """One running ``dtpoc-gateway`` process (see the module docstring)."""

    base_url: str
    pid: int
    env: dict[str, str]
    log_path: Path
    process: processes.ServerProcess

    def url(self, path: str) -> str:
        return self.base_url + path

    def stop(self) -> None:
        self.process.stop()


def gateway_executable() -> str:
    """The ``dtpoc-gateway`` console script of the environment running the tests."""
    return processes.console_script("dtpoc-gateway")


def _ready(base_url: str) -> bool:
    try:
        return httpx.get(base_url + "/readyz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_gateway(
    *,
    workdir: Path,
    files_address: str | None = None,
    orchestrator_address: str | None = None,
    backends: Mapping[str, str] | None = None,
    token_hashes: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> GatewayServer:
    """Start ``dtpoc-gateway`` and wait for ``/readyz`` (see the module docstring)."""
    last_error: Exception | None = None
    for attempt in range(_STARTS):
        port = ports.free_port()
        variables = {
            "DTPOC_GATEWAY_LISTEN": f"{ports.LOOPBACK}:{port}",
            "DTPOC_GATEWAY_FILES_ADDRESS": files_address or "",
            "DTPOC_GATEWAY_ORCHESTRATOR_ADDRESS": orchestrator_address or "",
            "DTPOC_GATEWAY_BACKENDS": json.dumps(dict(backends or {})),
            "DTPOC_GATEWAY_AUTH_TOKEN_HASHES": ",".join(token_hashes),
            "DTPOC_GATEWAY_AUTH_TOKENS_FILE": "",
            "DTPOC_GATEWAY_AUTH_DISABLED": "false" if token_hashes else "true",
            "DTPOC_GATEWAY_LOG_LEVEL": "INFO",
            "DTPOC_GATEWAY_SHUTDOWN_GRACE_SECONDS": "5",
            "DTPOC_GATEWAY_GRPC_TOKEN_FILE": str(credentials().token_file(grpcauth.GATEWAY)),
            **dict(env or {}),
        }
        workdir.mkdir(parents=True, exist_ok=True)
        log_path = workdir / f"dtpoc-gateway-{port}-{attempt}.log"
        server = processes.ServerProcess(
            name="dtpoc-gateway",
            argv=[gateway_executable()],
            log_path=log_path,
            env=variables,
            cwd=workdir,
        ).start()
        base_url = f"http://{ports.LOOPBACK}:{port}"
        try:
            server.wait_ready(
                functools.partial(_ready, base_url), timeout=READY_TIMEOUT, what="GET /readyz"
            )
        except processes.ServerExited as exc:
            last_error = exc
            if "address already in use" in str(exc).lower():
                continue
            raise
        return GatewayServer(
            base_url=base_url, pid=server.pid, env=variables, log_path=log_path, process=server
        )
    assert last_error is not None
    raise last_error
