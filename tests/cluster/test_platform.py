"""The chart on the real node, used as a client of the original uses it (REST + token)."""

from __future__ import annotations

import hashlib
import json

import httpx

from tests.cluster import _api as api
from tests.cluster.helpers import Platform
from tools.cluster import layout, release


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
        file_id = api.upload(client)
        # The original's launch body: its image at :latest, reps=3, the workbook mounted.
        service_id = api.launch(
            client,
            {
                "image": api.ORIGINAL_IMAGE,
                "version": "latest",
                "description": "cluster tier",
                "env": {"SIM_HOURS": "168"},
                "mount_files": {file_id: "input.xlsx"},
                "ana": {"job_type": "ondemand", "reps": 3},
            },
        )
        final = api.wait(
            client, service_id, lambda s: s["phase"] in api.FINAL, "the service to finish"
        )
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
        sample_sha = hashlib.sha256(api.SAMPLE.read_bytes()).hexdigest()
        assert all(o["input"]["sha256"] == sample_sha for o in outputs), (
            "the init container fetched the uploaded workbook from Files"
        )
        stored = final["output_files"]
        assert len(stored) == 3
        assert json.loads(client.get(f"/files/{stored[0]}").content)["schema"].startswith(
            "dtpoc.histolab.kpis/"
        )

        assert client.delete(f"/service/{service_id}/terminate").status_code == 200
        after = api.status(client, service_id)
        assert after["phase"] == "terminated"
        assert sorted(after["output_files"]) == sorted(stored), "terminate keeps the outputs"
        assert client.get(f"/service/{service_id}/output/1").json() == outputs[1]


def test_a_replica_exiting_3_is_reported_failed_with_exit_code_3(platform: Platform) -> None:
    with platform.client() as client:
        service_id = api.launch(
            client,
            {
                "image": api.ORIGINAL_IMAGE,
                "version": "latest",
                "description": "exits 3",
                "env": {},
                "mount_files": {},
                "ana": {"job_type": "ondemand", "reps": 1},
                "command": ["python3", "-c", "import sys; sys.exit(3)"],
            },
        )
        final = api.wait(client, service_id, lambda s: s["phase"] in api.FINAL, "the failure")
        assert final["phase"] == "failed", final
        (replica,) = final["replicas"]
        assert (replica["state"], replica["exit_code"]) == ("failed", 3), replica


def test_an_image_that_does_not_exist_reports_the_pull_failure(platform: Platform) -> None:
    with platform.client() as client:
        service_id = api.launch(
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
        status = api.wait(
            client,
            service_id,
            lambda s: "no-such-image" in s.get("message", "") and "pull" in s["message"].lower(),
            "the pull failure in the status message",
        )
        assert status["phase"] not in ("succeeded",)
        client.delete(f"/service/{service_id}/terminate")


def test_helm_test_passes_and_the_notes_commands_work(platform: Platform) -> None:
    lay = platform.node.lay
    answer = release.helm(lay, "test", layout.RELEASE, f"--namespace={layout.NAMESPACE}")
    assert "Phase:          Succeeded" in answer, answer
    notes = release.helm(lay, "get", "notes", layout.RELEASE, f"--namespace={layout.NAMESPACE}")
    # The ingress is off on this node: NOTES say to port-forward the gateway's Service.
    forward = next(line.split() for line in notes.splitlines() if "port-forward svc/" in line)
    service, ports_arg = forward[forward.index("port-forward") + 1], forward[-2]
    assert service == f"svc/{layout.RELEASE}-gateway" and ports_arg.endswith(":80"), forward
    with httpx.Client(base_url=platform.api_url) as anonymous:
        assert anonymous.get("/healthz").status_code == 200, "NOTES' curl $API/healthz"
        assert anonymous.get("/service/").status_code == 401, "the API needs the token"
