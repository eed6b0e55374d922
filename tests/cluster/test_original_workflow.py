"""The original's first workflow without the API: kubectl apply of its sample Analytics."""

from __future__ import annotations

from typing import Any

from dtpoc_local import waiting
from tests.cluster import _api as api
from tests.cluster.helpers import Platform
from tools.cluster import layout

SAMPLE_NAME = "669a52d1364a1b751c550d56"
DESCRIPTION = (
    "An analytics module that uses the Histopathology BIM runner times to simulate "
    "sample flow and reports KPIs"
)
SAMPLE_RESOURCE = f"""apiVersion: eng.cam.ac.uk/v1alpha1
kind: Analytics
metadata:
  name: {SAMPLE_NAME}
spec:
  image: {api.ORIGINAL_IMAGE}:latest
  description: "{DESCRIPTION}"
  jobType: ondemand
  reps: 2
  env:
    INPUT_EXCEL_FILE: /input/input.xlsx
    OUTPUT_FOLDER: /output
    SIM_HOURS: "1176"
    NUM_REPS: "2"
"""
"""The seed documentation's ana-digital-hosp-des.yaml, as it is."""


def _pods_of(platform: Platform, job: str) -> list[dict[str, Any]]:
    path = f"/api/v1/namespaces/{layout.NAMESPACE}/pods?labelSelector=job-name%3D{job}"
    pods: list[dict[str, Any]] = platform.kube.request("GET", path)["items"]
    return pods


def _job_named_like(platform: Platform, part: str) -> dict[str, Any] | None:
    jobs = platform.kube.request("GET", f"/apis/batch/v1/namespaces/{layout.NAMESPACE}/jobs")
    return next((j for j in jobs["items"] if part in j["metadata"]["name"]), None)


def _started(pod: dict[str, Any]) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any(
        s.get("state", {}).get("running") or s.get("state", {}).get("terminated") for s in statuses
    )


def test_kubectl_apply_of_the_seed_sample_runs_two_pods_through_the_operator(
    platform: Platform,
) -> None:
    applied = platform.node.kubectl(
        "-n", layout.NAMESPACE, "apply", "-f", "-", stdin=SAMPLE_RESOURCE
    )
    assert SAMPLE_NAME in applied
    try:
        jobs = waiting.wait_for(
            lambda: [
                line
                for line in platform.kubectl("-n", layout.NAMESPACE, "get", "jobs").splitlines()
                if SAMPLE_NAME in line
            ],
            timeout=60,
            what="kubectl get jobs to show the operator's Job",
        )
        job = jobs[0].split()[0]
        started = waiting.wait_for(
            lambda: (p := _pods_of(platform, job)) and len(p) == 2 and all(map(_started, p)),
            timeout=api.RUN_TIMEOUT,
            what="the Job's two pods to start on the node",
        )
        assert started
        table = platform.kubectl("-n", layout.NAMESPACE, "get", "ana", SAMPLE_NAME).splitlines()
        header, row = table[0].split(), table[1].split()
        assert {"TYPE", "IMAGE"} <= set(header), header
        values = dict(zip(header, row, strict=False))
        assert values["TYPE"] == "ondemand"
        assert values["IMAGE"].startswith(api.ORIGINAL_IMAGE)
    finally:
        platform.kubectl("-n", layout.NAMESPACE, "delete", "ana", SAMPLE_NAME, "--wait=false")


def test_an_ondemand_service_without_reps_is_one_replica_in_the_crd_and_the_api(
    platform: Platform,
) -> None:
    resource = SAMPLE_RESOURCE.replace(SAMPLE_NAME, "ondemand-without-reps").replace(
        "  reps: 2\n", ""
    )
    platform.node.kubectl("-n", layout.NAMESPACE, "apply", "-f", "-", stdin=resource)
    try:
        job = waiting.wait_for(
            lambda: _job_named_like(platform, "ondemand-without-reps"),
            timeout=60,
            what="the operator's Job for the resource without reps",
        )
        assert job["spec"]["completions"] == 1
    finally:
        platform.kubectl(
            "-n", layout.NAMESPACE, "delete", "ana", "ondemand-without-reps", "--wait=false"
        )

    with platform.client() as client:
        service_id = api.launch(
            client,
            {
                "image": api.ORIGINAL_IMAGE,
                "version": "latest",
                "description": "no reps",
                "env": {"SIM_HOURS": "24"},
                "mount_files": {},
                "ana": {"job_type": "ondemand"},
            },
        )
        assert api.status(client, service_id)["total_runs"] == 1
        resource_path = (
            f"/apis/eng.cam.ac.uk/v1alpha1/namespaces/{layout.NAMESPACE}/analytics/{service_id}"
        )
        assert platform.kube.request("GET", resource_path)["spec"]["reps"] == 1
        client.delete(f"/service/{service_id}/terminate")
