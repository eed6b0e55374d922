"""The gateway as a process: structured access logs, request ids, graceful stop."""

from __future__ import annotations

import json
import signal
import threading
from typing import Any

import httpx

from dtpoc_local.waiting import wait_for
from tests.gateway import doubles
from tests.gateway.helpers import PREFIX

#: One client for the module; a generous timeout for a busy shared machine.
http = httpx.Client(timeout=30.0)


def access_lines(log_text: str) -> list[dict[str, Any]]:
    found = []
    for line in log_text.splitlines():
        if line.startswith("{") and '"http request"' in line:
            found.append(json.loads(line))
    return found


def test_every_request_is_one_json_access_line_with_its_request_id(
    gateway_server: Any, orchestrator_double: tuple[doubles.OrchestratorDouble, str]
) -> None:
    double, address = orchestrator_double
    server = gateway_server(orchestrator_address=address)
    answer = http.get(
        server.url(f"{PREFIX}/service/{'0' * 24}/status"), headers={"X-Request-Id": "req-42"}
    )
    assert answer.status_code == 404
    assert answer.headers["x-request-id"] == "req-42"
    generated = http.get(server.url("/readyz")).headers["x-request-id"]
    assert len(generated) == 32

    def logged() -> list[dict[str, Any]]:
        lines = access_lines(server.log_path.read_text())
        return [line for line in lines if line["request_id"] in ("req-42", generated)]

    def both_logged() -> list[dict[str, Any]] | None:
        lines = logged()
        return lines if len(lines) == 2 else None

    lines = wait_for(both_logged, timeout=30.0, what="access lines")
    first = next(line for line in lines if line["request_id"] == "req-42")
    assert first["method"] == "GET" and first["status"] == 404
    assert first["path"] == f"{PREFIX}/service/{'0' * 24}/status"
    assert first["logger"] == "dtpoc_gateway.access"
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] > 0, first
    assert any(m.get("x-request-id") == "req-42" for m in double.metadata)  # sent on to gRPC


def test_sigterm_lets_in_flight_requests_finish(
    gateway_server: Any, orchestrator_double: tuple[doubles.OrchestratorDouble, str]
) -> None:
    double, address = orchestrator_double
    server = gateway_server(orchestrator_address=address)
    slow = double.add_service(image="slow", reps=1)
    double.slow_ids.add(slow.id)
    double.slow_seconds = 1.5
    result: dict[str, Any] = {}

    def call() -> None:
        result["answer"] = http.get(server.url(f"{PREFIX}/service/{slow.id}/status"), timeout=30)

    caller = threading.Thread(target=call)
    caller.start()
    wait_for(
        lambda: any(
            name == "GetServiceStatus" and request.id == slow.id
            for name, request in double.received
        ),
        timeout=10.0,
        what="the slow call to reach the backend",
    )
    server.process._popen.send_signal(signal.SIGTERM)
    caller.join(timeout=30)
    assert result["answer"].status_code == 200
    code = server.process._popen.wait(timeout=30)
    # uvicorn finishes the graceful stop, then ends by the signal it got (exit 0 or -15).
    assert code in (0, -signal.SIGTERM)
    log = server.log_path.read_text()
    assert "Application shutdown complete" in log
