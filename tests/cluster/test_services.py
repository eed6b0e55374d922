"""Scheduled and persistent services, and the operator's pod deleted mid-run, on the node."""

from __future__ import annotations

from typing import Any

from dtpoc_local import waiting
from tests.cluster import _api as api
from tests.cluster.helpers import Platform
from tools.cluster import layout

HISTOLAB_AFTER = "sleep {seconds}; exec dtpoc-histolab"


def _body(ana: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "image": api.ORIGINAL_IMAGE,
        "version": "latest",
        "description": "cluster tier",
        "env": {"SIM_HOURS": "24"},
        "mount_files": {},
        "ana": ana,
        **extra,
    }


def test_a_scheduled_service_runs_every_minute_and_its_outputs_are_collected(
    platform: Platform,
) -> None:
    with platform.client() as client:
        file_id = api.upload(client)
        service_id = api.launch(
            client,
            _body(
                {"job_type": "scheduled", "reps": 1, "schedule": "*/1 * * * *"},
                mount_files={file_id: "input.xlsx"},
            ),
        )
        status = api.wait(
            client,
            service_id,
            lambda s: s["succeeded_runs"] >= 1 and s["output_files"],
            "a scheduled run to succeed with its outputs collected",
        )
        assert status["job_type"] == "scheduled"
        assert client.get(f"/files/{status['output_files'][0]}").status_code == 200
        client.delete(f"/service/{service_id}/terminate")


def test_a_persistent_services_port_answers_from_another_pod(platform: Platform) -> None:
    with platform.client() as client:
        service_id = api.launch(
            client,
            _body(
                {"job_type": "persistent"},
                port=8080,
                command=["python3", "-m", "http.server", "8080", "--directory", "/tmp"],
            ),
        )
        api.wait(client, service_id, lambda s: s["phase"] == "running", "the service to run")
        services = platform.kube.request("GET", f"/api/v1/namespaces/{layout.NAMESPACE}/services")
        (name,) = [
            s["metadata"]["name"] for s in services["items"] if service_id in s["metadata"]["name"]
        ]
        script = (
            "import urllib.request; "
            f"print(urllib.request.urlopen('http://{name}:8080/', timeout=10).status)"
        )
        job = api.job(f"probe-{service_id[-8:]}", platform.images["dtpoc"], script, completions=1)
        path = f"/apis/batch/v1/namespaces/{layout.NAMESPACE}/jobs"
        platform.kube.request("POST", path, body=job)
        job_name = job["metadata"]["name"]
        waiting.wait_for(
            lambda: api.complete(platform, layout.NAMESPACE, job_name),
            timeout=api.JOB_TIMEOUT,
            what="the other pod to reach the persistent service",
        )
        logs = platform.kubectl("-n", layout.NAMESPACE, "logs", f"job/{job_name}")
        assert logs.strip() == "200"
        platform.kubectl("-n", layout.NAMESPACE, "delete", "job", job_name, "--wait=false")
        client.delete(f"/service/{service_id}/terminate")


def _operator_pods(platform: Platform) -> list[str]:
    selector = "app.kubernetes.io/component%3Doperator"
    path = f"/api/v1/namespaces/{layout.NAMESPACE}/pods?labelSelector={selector}"
    items = platform.kube.request("GET", path)["items"]
    return [p["metadata"]["name"] for p in items if not p["metadata"].get("deletionTimestamp")]


def test_deleting_the_operators_pod_while_replicas_run_loses_and_doubles_no_output(
    platform: Platform,
) -> None:
    with platform.client() as client:
        file_id = api.upload(client)
        service_id = api.launch(
            client,
            _body(
                {"job_type": "ondemand", "reps": 3},
                mount_files={file_id: "input.xlsx"},
                command=["sh", "-c", HISTOLAB_AFTER.format(seconds=15)],
            ),
        )
        api.wait(client, service_id, lambda s: s["active_runs"] == 3, "three replicas running")
        (old,) = _operator_pods(platform)
        platform.kubectl("-n", layout.NAMESPACE, "delete", "pod", old, "--wait=false")
        final = api.wait(
            client, service_id, lambda s: s["phase"] in api.FINAL, "the service to finish"
        )
        assert (final["phase"], final["succeeded_runs"]) == ("succeeded", 3), final
        assert len(final["output_files"]) == len(set(final["output_files"])) == 3
        assert all(len(r["output_file_ids"]) == 1 for r in final["replicas"]), final["replicas"]
        seeds = {client.get(f"/service/{service_id}/output/{i}").json()["seed"] for i in range(3)}
        assert len(seeds) == 3
        new = _operator_pods(platform)
        assert new and old not in new, "a new operator pod took over"
        assert api.status(client, service_id)["output_files"] == final["output_files"]
