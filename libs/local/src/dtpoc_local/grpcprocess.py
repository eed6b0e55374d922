"""Start one of our gRPC servers as a subprocess and wait until it serves.

Shared by the starters of every gRPC service (files, orchestrator): the
server binds port 0 and logs the address it got (``"grpc server
listening"``), so there is no port race; it is ready when gRPC health
answers SERVING. Used by :mod:`dtpoc_local.servers`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dtpoc_local import processes


def listening_address(log_path: Path) -> str | None:
    """The address the server logged it listens on, once it has."""
    try:
        text = log_path.read_text(errors="replace")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        if '"grpc server listening"' not in line:
            continue
        try:
            address = json.loads(line).get("address")
        except json.JSONDecodeError:
            continue
        if isinstance(address, str):
            return address
    return None


def health_serving(address: str) -> bool:
    """True when the server at ``address`` answers health SERVING."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def start(
    *,
    name: str,
    argv: Sequence[str],
    env: dict[str, str],
    workdir: Path,
    log_path: Path,
    wait_serving: bool,
    timeout: float,
) -> tuple[processes.ServerProcess, str]:
    """Start the server; answer it and its address once it logged one (and, when
    ``wait_serving``, answers health SERVING) within ``timeout`` seconds."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = processes.ServerProcess(
        name=name, argv=list(argv), log_path=log_path, env=env, cwd=workdir
    ).start()
    found: list[str] = []

    def ready() -> bool:
        address = found[0] if found else listening_address(log_path)
        if address is None:
            return False
        if not found:
            found.append(address)
        return not wait_serving or health_serving(address)

    what = "gRPC health SERVING" if wait_serving else "the listening address in its log"
    server.wait_ready(ready, timeout=timeout, what=what)
    return server, found[0]
