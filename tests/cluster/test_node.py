"""The node itself: real pods from a locally built image, real DNS, real logs."""

from __future__ import annotations

from typing import Any

from tests.cluster.conftest import Platform
from tests.realdeps import images, waiting

JOB_TIMEOUT = 180.0


def _job(name: str, image: str, script: str, *, completions: int) -> dict[str, Any]:
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


def _complete(platform: Platform, namespace: str, name: str) -> dict[str, Any] | None:
    path = f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}"
    status: dict[str, Any] = platform.kube.request("GET", path).get("status") or {}
    conditions = status.get("conditions") or []
    if any(c["type"] == "Failed" and c["status"] == "True" for c in conditions):
        raise AssertionError(f"job {name} failed: {status}")
    done = any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)
    return status if done else None


def test_indexed_job_of_two_pods_runs_to_complete_with_each_index_in_its_log(
    platform: Platform,
) -> None:
    namespace = platform.kube.create_namespace(prefix="node")
    image = images.ensure_image("dtpoc")
    script = "import os; print('replica', os.environ['JOB_COMPLETION_INDEX'])"
    platform.kube.request(
        "POST",
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
        body=_job("two", image, script, completions=2),
    )
    status = waiting.wait_for(
        lambda: _complete(platform, namespace, "two"),
        timeout=JOB_TIMEOUT,
        what="the Indexed Job to Complete",
        details=lambda: platform.kubectl("-n", namespace, "get", "pods", "-o", "wide"),
    )
    assert status["succeeded"] == 2
    logs = sorted(
        platform.kubectl("-n", namespace, "logs", pod).strip()
        for pod in platform.kubectl("-n", namespace, "get", "pods", "-o", "name").split()
    )
    assert logs == ["replica 0", "replica 1"], "logs come from the real kubelet"
    platform.kube.delete_namespace(namespace)


def test_pods_resolve_service_names_through_cluster_dns(platform: Platform) -> None:
    namespace = platform.kube.create_namespace(prefix="dns")
    image = images.ensure_image("dtpoc")
    script = (
        "import socket; "
        "print(socket.gethostbyname('kubernetes.default.svc.cluster.local')); "
        "print(socket.gethostbyname('kubernetes.default'))"
    )
    platform.kube.request(
        "POST",
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
        body=_job("dns", image, script, completions=1),
    )
    waiting.wait_for(
        lambda: _complete(platform, namespace, "dns"), timeout=JOB_TIMEOUT, what="the DNS Job"
    )
    (pod,) = platform.kubectl("-n", namespace, "get", "pods", "-o", "name").split()
    service = platform.kube.request("GET", "/api/v1/namespaces/default/services/kubernetes")
    service_ip = service["spec"]["clusterIP"]
    assert platform.kubectl("-n", namespace, "logs", pod).split() == [service_ip, service_ip]
    platform.kube.delete_namespace(namespace)
