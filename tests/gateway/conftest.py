"""Shared fixtures of the gateway tests.

Most tests here check the gateway's generic behaviour against the
orchestrator test double (``tests/gateway/doubles.py``) through one gateway
process per module; the Files REST paths run against the real Files service
(``files_server``).

Shared code (classes, constants, helpers) lives in :mod:`tests.gateway.helpers`;
this module holds only fixtures, so tests import from there, never from here.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from dtpoc_local.servers import gateway
from tests.gateway import doubles, helpers


@pytest.fixture(scope="module")
def orchestrator_double() -> Iterator[tuple[doubles.OrchestratorDouble, str]]:
    """The orchestrator test double and its address, for one test module."""
    with doubles.serving_orchestrator_double() as served:
        yield served


@pytest.fixture(scope="module")
def double_gateway(
    orchestrator_double: tuple[doubles.OrchestratorDouble, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[gateway.GatewayServer]:
    """One gateway in front of the orchestrator double, for one test module."""
    _double, address = orchestrator_double
    with helpers.gateway_before(
        address,
        workdir=tmp_path_factory.mktemp("gateway-double"),
        env={"DTPOC_GATEWAY_SSE_KEEPALIVE_SECONDS": "0.2"},
    ) as server:
        yield server


@pytest.fixture(scope="module")
def api(double_gateway: gateway.GatewayServer) -> Iterator[httpx.Client]:
    """An HTTP client of ``double_gateway`` (base URL set, no auth needed)."""
    with httpx.Client(base_url=double_gateway.base_url, timeout=30.0) as client:
        yield client
