"""What the cluster tier's tests share: REST calls as a client of the original makes them,
and small Jobs of the platform image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from dtpoc_local import waiting
from tests.cluster.helpers import Platform
from tools.cluster import layout

SAMPLE = layout.REPO / "examples" / "histolab" / "sample" / "input.xlsx"
ORIGINAL_IMAGE = "ghcr.io/cam-digital-hospitals/digital-hosp-des"
RUN_TIMEOUT = 300.0
FINAL = ("succeeded", "failed", "terminated")


def finished(status: dict[str, Any]) -> bool:
    return status["phase"] in FINAL


def upload(client: httpx.Client, path: Path = SAMPLE) -> str:
    with path.open("rb") as workbook:
        response = client.post("/files/upload", files={"file": (path.name, workbook)})
    assert response.status_code == 200, response.text
    return str(response.json()["file_id"])


def launch(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/service/launch", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def status(client: httpx.Client, service_id: str) -> dict[str, Any]:
    response = client.get(f"/service/{service_id}/status")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait(client: httpx.Client, service_id: str, predicate: Any, what: str) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def check() -> dict[str, Any] | None:
        nonlocal last
        last = status(client, service_id)
        return last if predicate(last) else None

    result: dict[str, Any] = waiting.wait_for(
        check, timeout=RUN_TIMEOUT, what=what, details=lambda: f"last status: {last}"
    )
    return result


JOB_TIMEOUT = 180.0


def job(name: str, image: str, script: str, *, completions: int) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completionMode": "Indexed",
            "completions": completions,
            "parallelism": completions,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "command": ["python3", "-c", script],
                        }
                    ],
                }
            },
        },
    }


def complete(platform: Platform, namespace: str, name: str) -> dict[str, Any] | None:
    path = f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}"
    status: dict[str, Any] = platform.kube.request("GET", path).get("status") or {}
    conditions = status.get("conditions") or []
    if any(c["type"] == "Failed" and c["status"] == "True" for c in conditions):
        raise AssertionError(f"job {name} failed: {status}")
    done = any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)
    return status if done else None
