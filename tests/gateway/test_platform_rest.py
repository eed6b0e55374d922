"""The orchestrator's REST paths end to end: gateway -> real Orchestrator -> real Files.

No operator runs here, so services stay ``pending``; what is checked is the
REST surface the original clients use, with real services behind it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.orchestrator import OrchestratorServer
from tests.gateway.helpers import PREFIX


@pytest.fixture
def rest(
    files_server: FilesServer, orchestrator_server: OrchestratorServer, gateway_server: Any
) -> Iterator[httpx.Client]:
    server = gateway_server(
        files_address=files_server.address, orchestrator_address=orchestrator_server.address
    )
    with httpx.Client(base_url=server.base_url + PREFIX, timeout=60.0) as client:
        yield client


def launch_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "image": "ghcr.io/cam-digital-hospitals/digital-hosp-des",
        "version": "latest",
        "description": "Histopathology lab simulation reporting KPIs",
        "port": None,
        "env": {"INPUT_EXCEL_FILE": "/input/input.xlsx", "SIM_HOURS": "1176"},
        "mount_files": {},
        "ana": {"job_type": "ondemand", "reps": 2, "schedule": None},
        "sim": None,
        "command": ["python", "-c", "print('hello')"],
    }
    body.update(fields)
    return body


def test_launch_status_list_usage_watch_terminate(rest: httpx.Client) -> None:
    upload = rest.post("/files/upload", files={"file": ("input.xlsx", b"workbook bytes")})
    file_id = upload.json()["file_id"]

    launched = rest.post("/service/launch", json=launch_body(mount_files={file_id: "input.xlsx"}))
    assert launched.status_code == 202, launched.text
    service_id = launched.json()["id"]
    assert len(service_id) == 24

    status = rest.get(f"/service/{service_id}/status")
    assert status.status_code == 200
    body = status.json()
    assert body["active_runs"] == 0 and body["failed_runs"] == 0
    assert body["total_runs"] == 2 and body["output_files"] == []
    assert (body["phase"], body["status"]) == ("pending", "running"), "no operator: pending"

    listed = rest.get("/service/")
    assert listed.status_code == 200
    record = next(r for r in listed.json() if r["id"] == service_id)
    assert record["mount_files"] == {file_id: "input.xlsx"} and record["reps"] == 2
    assert rest.get("/service").json() == listed.json()

    usage = rest.get(f"/files/{file_id}/usage")
    assert usage.status_code == 200
    assert usage.json()["active_service_ids"] == [service_id]

    with rest.stream("GET", f"/service/{service_id}/watch") as watch:
        assert watch.status_code == 200
        first = next(line for line in watch.iter_lines() if line.startswith("data: "))
    assert "active_runs" in json.loads(first.removeprefix("data: "))["status"]

    terminated = rest.delete(f"/service/{service_id}/terminate")
    assert terminated.status_code == 200, terminated.text
    assert terminated.json()["message"]
    after = rest.get(f"/service/{service_id}/status").json()
    assert after["phase"] == "terminated"


def test_refusals_through_the_real_orchestrator(rest: httpx.Client) -> None:
    bad_reps = rest.post(
        "/service/launch", json=launch_body(ana={"job_type": "ondemand", "reps": 0})
    )
    assert bad_reps.status_code == 400
    assert "ana.reps" in bad_reps.json()["message"]

    simulation = rest.post("/service/launch", json=launch_body(ana=None, sim={}))
    assert simulation.status_code == 501
    assert simulation.json()["status"] == "UNIMPLEMENTED"

    missing_file = rest.post(
        "/service/launch", json=launch_body(mount_files={"f" * 24: "input.xlsx"})
    )
    assert missing_file.status_code == 404
    assert f"file {'f' * 24} does not exist" in missing_file.json()["message"]

    unknown = rest.get(f"/service/{'0' * 24}/status")
    assert unknown.status_code == 404
    not_an_id = rest.get("/service/xyz/status")
    assert not_an_id.status_code == 400
    assert "must be 24 hexadecimal digits" in not_an_id.json()["message"]
    assert "Traceback" not in not_an_id.text
