"""Failed replicas on Kubernetes: their reasons surface and the service ends ``failed``.

Real apiserver and Job controller; **the test plays the kubelet** through
``kubelet_double`` (it reports exit codes and reasons as a kubelet would, and
a waiting container for the image-pull case).
"""

from __future__ import annotations

from typing import Any

from tests.operator.helpers import KubeOperator, child_name
from tests.realdeps.kubelet_double import KubeletDouble


def _pods_by_index(
    kubelet: KubeletDouble, op: KubeOperator, service_id: str, count: int
) -> dict[int, str]:
    pods = kubelet.wait_for_job_pods(op.namespace, child_name(service_id), count=count)
    return {int(kubelet.completion_index(p) or 0): p["metadata"]["name"] for p in pods}


def test_exit_code_and_oom_killed_reasons_and_failed_service(
    kube_operator: KubeOperator, kubelet_double: KubeletDouble
) -> None:
    """Replica 1 exits 3, replica 2 is OOMKilled: both show why; the service ends failed,
    with the outputs of every replica (partial ones of the failed too) collected."""
    op = kube_operator
    service_id = op.create(
        {"image": "ghcr.io/example/sim", "jobType": "ondemand", "reps": 3, "command": ["run"]}
    )
    pods = _pods_by_index(kubelet_double, op, service_id, 3)
    for index in range(3):
        kubelet_double.write_container_outputs(
            op.output_root,
            f"{service_id}/{index}/{pods[index]}",
            {"log.txt": f"replica {index}".encode()},
        )
    kubelet_double.finish_pod(op.namespace, pods[0], exit_code=0)
    kubelet_double.finish_pod(
        op.namespace, pods[1], exit_code=3, message="ValueError: bad workbook"
    )
    kubelet_double.finish_pod(op.namespace, pods[2], exit_code=137, reason="OOMKilled")

    status = op.wait_status(service_id, lambda s: s.get("phase") == "failed", "phase failed")
    first, second, third = (op.replica(status, i) for i in range(3))
    assert first["state"] == "succeeded"
    assert (second["state"], second["exitCode"], second["reason"]) == ("failed", 3, "Error")
    assert second["message"] == "ValueError: bad workbook"
    assert (third["state"], third["exitCode"], third["reason"]) == ("failed", 137, "OOMKilled")
    assert (status["succeeded"], status["failed"], status["active"]) == (1, 2, 0)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Failed"]["status"] == "True"
    assert conditions["Complete"]["status"] == "False"
    assert "OOMKilled" in status["message"] and "exit code 3" in status["message"]
    # A failed replica's outputs are collected too.
    assert all(op.replica(status, i)["outputsCollected"] for i in range(3))
    assert len(op.outputs(service_id)) == 3


def test_deadline_exceeded_fails_unfinished_replicas(kube_operator: KubeOperator) -> None:
    """activeDeadlineSeconds passes with nothing finished: every replica fails with
    ``DeadlineExceeded`` (the Job condition) and the service ends failed."""
    op = kube_operator
    service_id = op.create(
        {
            "image": "ghcr.io/example/sim",
            "jobType": "ondemand",
            "reps": 2,
            "activeDeadlineSeconds": 2,
            "command": ["run"],
        }
    )
    status = op.wait_status(service_id, lambda s: s.get("phase") == "failed", "phase failed")
    for index in range(2):
        replica = op.replica(status, index)
        assert (replica["state"], replica["reason"]) == ("failed", "DeadlineExceeded")
    assert status["failed"] == 2


def test_image_pull_error_surfaces_while_pending(
    kube_operator: KubeOperator, kubelet_double: KubeletDouble
) -> None:
    """A container the kubelet (double) cannot pull stays pending, and says why."""
    op = kube_operator
    service_id = op.create(
        {
            "image": "ghcr.io/example/nonexistent",
            "jobType": "ondemand",
            "reps": 1,
            "command": ["run"],
        }
    )
    (pod,) = _pods_by_index(kubelet_double, op, service_id, 1).values()
    kubelet_double.set_pod_running(op.namespace, pod)
    waiting_status: dict[str, Any] = {
        "phase": "Pending",
        "containerStatuses": [
            {
                "name": "analytics",
                "image": "ghcr.io/example/nonexistent:latest",
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {
                    "waiting": {
                        "reason": "ImagePullBackOff",
                        "message": "Back-off pulling image ghcr.io/example/nonexistent:latest",
                    }
                },
            }
        ],
    }
    op.kube.request(
        "PATCH",
        f"/api/v1/namespaces/{op.namespace}/pods/{pod}/status",
        body={"status": waiting_status},
        content_type="application/strategic-merge-patch+json",
    )
    status = op.wait_status(
        service_id,
        lambda s: op.replica(s, 0).get("reason") == "ImagePullBackOff",
        "ImagePullBackOff in the replica",
    )
    replica = op.replica(status, 0)
    assert replica["state"] == "pending"
    assert "Back-off pulling image" in replica["message"]
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "ImagePullBackOff")
    assert "ImagePullBackOff" in status["message"]


def test_a_retried_replica_fails_only_when_its_retries_are_used_up(
    kube_operator: KubeOperator, kubelet_double: KubeletDouble
) -> None:
    """backoffLimitPerIndex 1: the first failure is a retry (the Job controller starts a
    new pod for the index), the second is failure for good."""
    op = kube_operator
    service_id = op.create(
        {
            "image": "ghcr.io/example/sim",
            "jobType": "ondemand",
            "reps": 1,
            "backoffLimitPerIndex": 1,
            "command": ["run"],
        }
    )
    job_name = child_name(service_id)
    (first,) = kubelet_double.wait_for_job_pods(op.namespace, job_name, count=1)
    kubelet_double.finish_pod(op.namespace, first["metadata"]["name"], exit_code=1)
    (second,) = kubelet_double.wait_for_job_pods(op.namespace, job_name, count=1)
    assert second["metadata"]["name"] != first["metadata"]["name"]
    status = op.status(service_id)
    assert op.replica(status, 0).get("state") != "failed"
    assert status.get("phase") != "failed"
    kubelet_double.finish_pod(op.namespace, second["metadata"]["name"], exit_code=2)
    status = op.wait_status(service_id, lambda s: s.get("phase") == "failed", "failed")
    replica = op.replica(status, 0)
    assert (replica["state"], replica["exitCode"], replica["podName"]) == (
        "failed",
        2,
        second["metadata"]["name"],
    )
