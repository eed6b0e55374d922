"""The ``gateway_server`` fixture: real ``dtpoc-gateway`` processes for a test.

``gateway_server`` -> ``start(**options) -> GatewayServer``
    A factory. Each call starts ``dtpoc-gateway`` with
    :func:`dtpoc_local.servers.gateway.start_gateway` (see there for the
    options and :class:`~dtpoc_local.servers.gateway.GatewayServer`). Every
    gateway started is stopped (SIGTERM, then SIGKILL) after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import pytest

from dtpoc_local.servers.gateway import GatewayServer, start_gateway


@pytest.fixture
def gateway_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., GatewayServer]]:
    """Factory of ``dtpoc-gateway`` processes (module docstring)."""
    started: list[GatewayServer] = []
    workdir = tmp_path_factory.mktemp("gateway")

    def start(
        *,
        files_address: str | None = None,
        orchestrator_address: str | None = None,
        backends: Mapping[str, str] | None = None,
        token_hashes: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> GatewayServer:
        server = start_gateway(
            workdir=workdir,
            files_address=files_address,
            orchestrator_address=orchestrator_address,
            backends=backends,
            token_hashes=token_hashes,
            env=env,
        )
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
