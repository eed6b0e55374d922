"""Fixtures of the gateway's unit tier: the gateway application in-process (no server
process; requests through Starlette's test client, the app's lifespan run) in front of
the orchestrator test double (``tests/gateway/doubles.py``, a gRPC server on a loopback
port of this process)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from dtpoc_gateway import app, settings
from tests.gateway import doubles


@pytest.fixture(scope="module")
def orchestrator_double() -> Iterator[tuple[doubles.OrchestratorDouble, str]]:
    """The orchestrator test double and its address, for one test module."""
    with doubles.serving_orchestrator_double() as served:
        yield served


@pytest.fixture(scope="module")
def api(orchestrator_double: tuple[doubles.OrchestratorDouble, str]) -> Iterator[TestClient]:
    """The gateway in front of the double, called in-process (base URL set, no auth)."""
    _double, address = orchestrator_double
    config = settings.GatewaySettings(
        orchestrator_address=address,
        auth_disabled=True,
        grpc_token_file=None,
        sse_keepalive_seconds=0.2,
    )
    with TestClient(app.build(config)) as client:
        yield client
