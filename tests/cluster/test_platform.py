"""The chart on the real node, used as a client of the original uses it (REST + token)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx

from tests.cluster.conftest import Platform
from tests.realdeps import waiting
from tools.cluster import layout

SAMPLE = layout.REPO / "examples" / "histolab" / "sample" / "input.xlsx"
ORIGINAL_IMAGE = "ghcr.io/cam-digital-hospitals/digital-hosp-des"
RUN_TIMEOUT = 300.0
FINAL = ("succeeded", "failed", "terminated")


def _upload(client: httpx.Client, path: Path = SAMPLE) -> str:
    with path.open("rb") as workbook:
        response = client.post("/files/upload", files={"file": (path.name, workbook)})
    assert response.status_code == 200, response.text
    return str(response.json()["file_id"])


def _launch(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/service/launch", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _status(client: httpx.Client, service_id: str) -> dict[str, Any]:
    response = client.get(f"/service/{service_id}/status")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _wait(client: httpx.Client, service_id: str, predicate: Any, what: str) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def check() -> dict[str, Any] | None:
        nonlocal last
        last = _status(client, service_id)
        return last if predicate(last) else None

    result: dict[str, Any] = waiting.wait_for(
        check, timeout=RUN_TIMEOUT, what=what, details=lambda: f"last status: {last}"
    )
    return result


def test_every_workload_of_the_chart_is_ready_through_its_probes(platform: Platform) -> None:
    for kind in ("deployments", "statefulsets"):
        items = platform.kube.request("GET", f"/apis/apps/v1/namespaces/{layout.NAMESPACE}/{kind}")
        assert items["items"], f"the chart has {kind}"
        for item in items["items"]:
            status = item.get("status") or {}
            name = item["metadata"]["name"]
            assert status.get("readyReplicas") == item["spec"]["replicas"], (name, status)


def test_the_originals_body_runs_three_real_pods_and_collects_three_seeds(
    platform: Platform,
) -> None:
    with platform.client() as client:
        file_id = _upload(client)
        # The original's launch body: its image at :latest, reps=3, the workbook mounted.
        service_id = _launch(
            client,
            {
                "image": ORIGINAL_IMAGE,
                "version": "latest",
                "description": "cluster tier",
                "env": {"SIM_HOURS": "168"},
                "mount_files": {file_id: "input.xlsx"},
                "ana": {"job_type": "ondemand", "reps": 3},
            },
        )
        final = _wait(client, service_id, lambda s: s["phase"] in FINAL, "the service to finish")
        assert (final["phase"], final["succeeded_runs"], final["failed_runs"]) == (
            "succeeded",
            3,
            0,
        ), final
        pods = {r["pod_name"] for r in final["replicas"]}
        assert len(pods) == 3 and all(p.startswith(f"ana-{service_id}-") for p in pods)
        outputs = []
        for idx in range(3):
            response = client.get(f"/service/{service_id}/output/{idx}")
            assert response.status_code == 200, response.text
            outputs.append(response.json())
        assert [o["replica_index"] for o in outputs] == [0, 1, 2]
        assert len({o["seed"] for o in outputs}) == 3, "each replica runs its own seed"
        sample_sha = hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
        assert all(o["input"]["sha256"] == sample_sha for o in outputs), (
            "the init container fetched the uploaded workbook from Files"
        )
        stored = final["output_files"]
        assert len(stored) == 3
        assert json.loads(client.get(f"/files/{stored[0]}").content)["schema"].startswith(
            "dtpoc.histolab.kpis/"
        )

        assert client.delete(f"/service/{service_id}/terminate").status_code == 200
        after = _status(client, service_id)
        assert after["phase"] == "terminated"
        assert sorted(after["output_files"]) == sorted(stored), "terminate keeps the outputs"
        assert client.get(f"/service/{service_id}/output/1").json() == outputs[1]


def test_a_replica_exiting_3_is_reported_failed_with_exit_code_3(platform: Platform) -> None:
    with platform.client() as client:
        service_id = _launch(
            client,
            {
                "image": ORIGINAL_IMAGE,
                "version": "latest",
                "description": "exits 3",
                "env": {},
                "mount_files": {},
                "ana": {"job_type": "ondemand", "reps": 1},
                "command": ["python3", "-c", "import sys; sys.exit(3)"],
            },
        )
        final = _wait(client, service_id, lambda s: s["phase"] in FINAL, "the failure")
        assert final["phase"] == "failed", final
        (replica,) = final["replicas"]
        assert (replica["state"], replica["exit_code"]) == ("failed", 3), replica


def test_an_image_that_does_not_exist_reports_the_pull_failure(platform: Platform) -> None:
    with platform.client() as client:
        service_id = _launch(
            client,
            {
                "image": "ghcr.io/cam-digital-hospitals/no-such-image",
                "version": "1.0",
                "description": "missing image",
                "env": {},
                "mount_files": {},
                "ana": {"job_type": "ondemand", "reps": 1},
            },
        )
        status = _wait(
            client,
            service_id,
            lambda s: "no-such-image" in s.get("message", "") and "pull" in s["message"].lower(),
            "the pull failure in the status message",
        )
        assert status["phase"] not in ("succeeded",)
        client.delete(f"/service/{service_id}/terminate")
