"""Replica logs on the real node: the kubelet's pod logs, live and then from Files.

A replica of the original's image prints 10,000 lines, waits a while, then
exits 1: ``follow=true`` delivers every line while the pod still runs (the
orchestrator reads the pod's log through the apiserver and the node's
kubelet), the stream ends with the pod, and once the operator stored the
log the pod is deleted and the whole log still answers, from Files.
"""

from __future__ import annotations

import json

import httpx

from dtpoc_local import waiting
from tests.cluster import _api as api
from tests.cluster.helpers import Platform
from tools.cluster import layout

LINES = 10_000
SCRIPT = (
    "import sys, time\n"
    f"for i in range({LINES}):\n"
    "    print(f'line {i:05d} of the replica')\n"
    "sys.stdout.flush()\n"
    "time.sleep(25)\n"
    "sys.exit(1)\n"
)


def test_a_failing_pods_whole_log_is_followed_live_and_kept_after_the_pod_is_deleted(
    platform: Platform,
) -> None:
    with platform.client() as client:
        service_id = api.launch(
            client,
            {
                "image": api.ORIGINAL_IMAGE,
                "version": "latest",
                "description": "cluster tier: logs",
                "ana": {"job_type": "ondemand", "reps": 1},
                "command": ["python3", "-c", SCRIPT],
            },
        )
        api.wait(
            client,
            service_id,
            lambda s: s["replicas"] and s["replicas"][0]["state"] == "running",
            "the replica to run",
        )
        text = ""
        state_when_all_arrived = ""
        with client.stream(
            "GET",
            f"/service/{service_id}/logs/0",
            params={"follow": "true"},
            timeout=httpx.Timeout(30.0, read=120.0),
        ) as response:
            assert response.status_code == 200, response.read()
            for line in response.iter_lines():
                if line.startswith("data:"):
                    text += json.loads(line[5:])["text"]
                    if not state_when_all_arrived and f"line {LINES - 1:05d}" in text:
                        state_when_all_arrived = api.status(client, service_id)["replicas"][0][
                            "state"
                        ]
        assert state_when_all_arrived == "running"
        lines = text.splitlines()
        assert lines[-LINES:] == [f"line {i:05d} of the replica" for i in range(LINES)]

        final = api.wait(
            client,
            service_id,
            lambda s: s["phase"] == "failed" and s["replicas"][0].get("logs"),
            "the replica to fail with its log stored",
        )
        assert final["replicas"][0]["exit_code"] == 1
        pod = final["replicas"][0]["pod_name"]
        platform.kubectl("-n", layout.NAMESPACE, "delete", "pod", pod, "--wait=true")
        waiting.wait_for(
            lambda: (
                pod not in platform.kubectl("-n", layout.NAMESPACE, "get", "pods", "-o", "name")
            ),
            timeout=60,
            what=f"pod {pod} to be gone",
        )
        again = client.get(f"/service/{service_id}/logs/0")
        assert again.status_code == 200, again.text
        assert again.text == text
