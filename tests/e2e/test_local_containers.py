"""The original's launch body on one machine: the local runtime runs its image in containers.

The platform is what ``make run`` starts (see conftest.py); with podman
working here, ``python -m dtpoc_local.up`` turns the container runner on for the
operator and tells the orchestrator so. The histolab image carries the
original's name (``ghcr.io/cam-digital-hospitals/digital-hosp-des:latest``)
and is built by ``tools/images`` (cached by content: seconds once built).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from dtpoc_client.cli.output import to_json
from dtpoc_common import analytics
from dtpoc_local import images, waiting
from tests.e2e import localrun as e2e

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 300.0
"""Two short simulations in containers on a shared two-core machine, plus collection."""


@pytest.fixture(scope="module")
def histolab_image() -> str:
    available, reason = images.engine_available()
    if not available:
        pytest.skip(f"no container engine: {reason}")
    return images.ensure_image("histolab")


def original_body(file_id: str, **changes: Any) -> dict[str, Any]:
    """What a client of the original sends (shared/seed/api-contract.md)."""
    body: dict[str, Any] = {
        "image": "ghcr.io/cam-digital-hospitals/digital-hosp-des",
        "version": "latest",
        "description": "Histopathology lab simulation reporting KPIs",
        "port": None,
        "env": {
            "INPUT_EXCEL_FILE": "/input/input.xlsx",
            "OUTPUT_FOLDER": "/output",
            "SIM_HOURS": "168",
            "NUM_REPS": "2",
        },
        "mount_files": {file_id: "input.xlsx"},
        "ana": {"job_type": "ondemand", "reps": 2, "schedule": None},
        "sim": None,
    }
    body.update(changes)
    return body


def launch(platform: e2e.LocalPlatform, body: dict[str, Any]) -> str:
    """POST the original's body as its clients send it, nulls and all (plain HTTP: the
    Python client would send the message's JSON, which drops the nulls)."""
    with platform.http() as http:
        response = http.post("/service/launch", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def containers_of(service_id: str) -> list[str]:
    """Every container (running or not) of the service, from the engine itself."""
    answer = subprocess.run(
        images.podman_argv(
            "ps",
            "-a",
            "--filter",
            f"label={analytics.LABEL_SERVICE_ID}={service_id}",
            "--format",
            "{{.Names}}",
        ),
        env=images.podman_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return answer.stdout.split()


def done(status: dict[str, Any]) -> bool:
    return status.get("phase") in ("succeeded", "failed", "terminated") and all(
        r.get("outputs_collected") for r in status.get("replicas", [])
    )


def test_the_originals_body_runs_both_replicas_in_containers(
    histolab_image: str, local_platform: e2e.LocalPlatform
) -> None:
    with local_platform.client() as client:
        file_id = e2e.upload_sample(client)
        service_id = launch(local_platform, original_body(file_id))
        running = e2e.wait_for_status(
            client,
            service_id,
            lambda s: s.get("active_runs", 0) > 0 or done(s),
            timeout=RUN_TIMEOUT,
            what="a replica to run",
        )
        assert running["phase"] in ("running", "succeeded"), running
        final = e2e.wait_for_status(
            client, service_id, done, timeout=RUN_TIMEOUT, what="both replicas done"
        )
        assert final["phase"] == "succeeded", final
        assert (final["succeeded_runs"], final["failed_runs"]) == (2, 0)
        assert [(r["index"], r["exit_code"]) for r in final["replicas"]] == [(0, 0), (1, 0)]

        outputs = [to_json(client.services.output(service_id, idx).output) for idx in (0, 1)]
        assert [o["replica_index"] for o in outputs] == [0, 1]
        assert outputs[0]["seed"] != outputs[1]["seed"]
        assert outputs[0]["specimens"] != outputs[1]["specimens"], "different seeds, results"
        assert outputs[0]["sim_hours"] == 168  # the original's env reached the image
        assert outputs[0]["input"]["path"] == "/input/input.xlsx"  # INPUT_EXCEL_FILE, in /input

        terminated = client.services.terminate(service_id)
        assert terminated.service.phase == "terminated", terminated
        assert e2e.status(client, service_id)["phase"] == "terminated"
        assert containers_of(service_id) == []


def diagnosis(client: Any, platform: e2e.LocalPlatform, service_id: str) -> str:
    """What a failed wait reports: the service's status, the engine's containers and the
    platform's log (the operator's and the orchestrator's lines among it)."""
    engine = subprocess.run(
        images.podman_argv("ps", "-a", "--format", "{{.Names}} {{.Status}} {{.Labels}}"),
        env=images.podman_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return (
        f"status: {e2e.status(client, service_id)}\n"
        f"engine containers (exit {engine.returncode}):\n{engine.stdout}{engine.stderr}\n"
        f"platform log tail:\n{platform.process.log_tail(120)}"
    )


def test_terminate_stops_the_running_containers(
    histolab_image: str, local_platform: e2e.LocalPlatform
) -> None:
    with local_platform.client() as client:
        file_id = e2e.upload_sample(client)
        body = original_body(file_id)
        # About ten minutes of simulation here (0.7 ms a simulated hour), longer than the test;
        # the image refuses 1e6 hours or more, and exits 2 at once.
        body["env"] = {**body["env"], "SIM_HOURS": "900000"}
        service_id = launch(local_platform, body)
        waiting.wait_for(
            lambda: len(containers_of(service_id)) == 2,
            timeout=RUN_TIMEOUT,
            what="both containers to exist",
            details=lambda: diagnosis(client, local_platform, service_id),
        )
        running = e2e.wait_for_status(
            client,
            service_id,
            lambda s: s.get("active_runs") == 2 or done(s),
            timeout=RUN_TIMEOUT,
            what="both replicas running",
        )
        assert running["phase"] == "running", diagnosis(client, local_platform, service_id)
        terminated = client.services.terminate(service_id)
        assert terminated.service.phase == "terminated", terminated
        assert e2e.status(client, service_id)["phase"] == "terminated"
        # The engine's stop (SIGTERM, SIGKILL after the grace period), then removal.
        waiting.wait_for(
            lambda: containers_of(service_id) == [],
            timeout=RUN_TIMEOUT,
            what="nothing of the service left in the engine after terminate",
            details=lambda: diagnosis(client, local_platform, service_id),
        )


def test_a_missing_image_fails_with_the_kubernetes_reason(
    histolab_image: str, local_platform: e2e.LocalPlatform
) -> None:
    with local_platform.client() as client:
        file_id = e2e.upload_sample(client)
        service_id = launch(
            local_platform,
            original_body(
                file_id,
                image="ghcr.io/cam-digital-hospitals/no-such-image",
                ana={"job_type": "ondemand", "reps": 1},
            ),
        )
        final = e2e.wait_for_status(
            client,
            service_id,
            lambda s: s.get("phase") == "failed",
            timeout=RUN_TIMEOUT,
            what="the replica to fail",
        )
        (replica,) = final["replicas"]
        assert replica["state"] == "failed"
        assert replica["reason"] == "ErrImageNeverPull"  # the kubelet's word, pullPolicy Never
        assert "is not present with pull policy of Never" in replica["message"]
        assert json.dumps(final).count("no-such-image") >= 1
        assert containers_of(service_id) == []
