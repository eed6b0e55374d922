"""Every failure answers the same JSON shape with the mapped status, never a trace."""

from __future__ import annotations

import socket
from typing import Any

import httpx

from dtpoc_gateway import app as gateway_app
from dtpoc_gateway import settings
from tests.gateway import doubles
from tests.gateway.helpers import PREFIX, assert_error_shape


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_backend_that_is_down_answers_503_naming_it(gateway_server: Any) -> None:
    server = gateway_server(orchestrator_address=f"127.0.0.1:{_closed_port()}")
    answer = httpx.get(server.url(f"{PREFIX}/service/"), timeout=30.0)
    body = assert_error_shape(answer, 503)
    assert body["message"] == (
        "backend dtpoc.orchestrator.v1alpha1.OrchestratorService is unreachable; try again later"
    )
    assert answer.headers["retry-after"] == "1"
    unconfigured = httpx.get(server.url(f"{PREFIX}/files"), timeout=30.0)
    body = assert_error_shape(unconfigured, 503)
    assert "dtpoc.files.v1alpha1.FilesService" in body["message"]


def test_a_slow_backend_answers_504(
    gateway_server: Any, orchestrator_double: tuple[doubles.OrchestratorDouble, str]
) -> None:
    double, address = orchestrator_double
    server = gateway_server(
        orchestrator_address=address, env={"DTPOC_GATEWAY_CALL_TIMEOUT_SECONDS": "0.2"}
    )
    slow = double.add_service(image="slow")
    double.slow_ids.add(slow.id)
    answer = httpx.get(server.url(f"{PREFIX}/service/{slow.id}/status"), timeout=30.0)
    body = assert_error_shape(answer, 504)
    assert body["status"] == "DEADLINE_EXCEEDED"


async def test_fastapi_validation_errors_use_the_same_shape() -> None:
    config = settings.GatewaySettings(auth_disabled=True)
    application = gateway_app.build(config)

    @application.get("/typed/{number}")
    async def typed(number: int) -> dict[str, int]:
        return {"number": number}

    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answer = await client.get("/typed/abc")
    assert answer.status_code == 400
    body = answer.json()
    assert set(body) == {"code", "status", "message", "details", "detail"}
    assert body["details"][0]["field_violations"][0]["field"] == "path.number"
