"""Crash safety and termination on Kubernetes.

Real apiserver, controllers and Files service; **the test plays the
kubelet** through ``kubelet_double``. The crash is real: the operator
is SIGKILLed at the worst moment (:mod:`tests.operator.crashing_operator`, a
test-only wrapper at the store port: right after uploading outputs, before
recording them).
"""

from __future__ import annotations

from dtpoc_local import waiting
from dtpoc_local.servers.operator import operator_executable
from tests.operator.helpers import KubeOperator, child_name
from tests.realdeps.kubelet_double import KubeletDouble


def test_crash_between_upload_and_status_write_loses_and_doubles_nothing(
    kube_operator_factory: object, kubelet_double: KubeletDouble
) -> None:
    op: KubeOperator = kube_operator_factory(fault_crash_after_upload=True)  # type: ignore[operator]
    service_id = op.create(
        {"image": "ghcr.io/example/sim", "jobType": "ondemand", "reps": 2, "command": ["run"]}
    )
    job_name = child_name(service_id)
    pods = kubelet_double.wait_for_job_pods(op.namespace, job_name, count=2)
    for pod in pods:
        index = kubelet_double.completion_index(pod)
        kubelet_double.write_container_outputs(
            op.output_root,
            f"{service_id}/{index}/{pod['metadata']['name']}",
            {"a.json": f'{{"a": {index}}}'.encode(), "b.json": f'{{"b": {index}}}'.encode()},
        )
        kubelet_double.finish_pod(op.namespace, pod["metadata"]["name"], exit_code=0)

    op.process.wait_exited(timeout=60)  # it killed itself after uploading
    assert "FAULT INJECTION" in op.process.log_path.read_text()
    uploaded_before_crash = op.outputs(service_id)
    assert uploaded_before_crash, "the fault fires only after an upload"
    status = op.status(service_id)
    assert not any(r.get("outputsCollected") for r in status.get("replicas") or [])
    assert any((op.output_root / service_id).iterdir()), "local copies kept until recorded"

    op.process = op.process.restart(argv=[operator_executable()])  # the plain operator
    status = op.wait_status(service_id, lambda s: s.get("phase") == "succeeded", "succeeded")
    ids = sorted(i for r in status["replicas"] for i in r["outputFileIds"])
    stored = op.outputs(service_id)
    assert len(stored) == 4, "no output lost, none doubled"
    assert sorted(f["file_id"] for f in stored) == ids
    assert {f["file_id"] for f in uploaded_before_crash} <= set(ids)
    assert [j["metadata"]["name"] for j in op.jobs()] == [job_name], "no second Job"
    waiting.wait_for(
        lambda: not any((op.output_root / service_id).rglob("*.json")),
        timeout=10,
        what="local copies removed once recorded",
    )


def test_operator_restart_resumes_without_duplicates(
    kube_operator: KubeOperator, kubelet_double: KubeletDouble
) -> None:
    """Killed mid-run and restarted: it adopts the existing Job and carries on."""
    op = kube_operator
    service_id = op.create(
        {"image": "ghcr.io/example/sim", "jobType": "ondemand", "reps": 2, "command": ["run"]}
    )
    job_name = child_name(service_id)
    pods = kubelet_double.wait_for_job_pods(op.namespace, job_name, count=2)
    op.wait_status(service_id, lambda s: s.get("total") == 2, "status written")
    op.process.kill()
    for pod in pods:
        index = kubelet_double.completion_index(pod)
        kubelet_double.write_container_outputs(
            op.output_root,
            f"{service_id}/{index}/{pod['metadata']['name']}",
            {"out.txt": f"{index}".encode()},
        )
        kubelet_double.finish_pod(op.namespace, pod["metadata"]["name"], exit_code=0)
    op.process = op.process.restart()
    status = op.wait_status(service_id, lambda s: s.get("phase") == "succeeded", "succeeded")
    assert status["succeeded"] == 2
    assert len(op.outputs(service_id)) == 2
    assert [j["metadata"]["name"] for j in op.jobs()] == [job_name]


def test_terminate_collects_finished_and_partial_outputs_then_lets_go(
    kube_operator: KubeOperator, kubelet_double: KubeletDouble
) -> None:
    """Deleting the Analytics (what the orchestrator's terminate does) stops the Job,
    collects every replica's outputs into Files, then lets garbage collection finish."""
    op = kube_operator
    service_id = op.create(
        {"image": "ghcr.io/example/sim", "jobType": "ondemand", "reps": 2, "command": ["run"]}
    )
    job_name = child_name(service_id)
    pods = {
        kubelet_double.completion_index(p): p["metadata"]["name"]
        for p in kubelet_double.wait_for_job_pods(op.namespace, job_name, count=2)
    }
    kubelet_double.set_pod_running(op.namespace, pods[1])
    kubelet_double.write_container_outputs(
        op.output_root, f"{service_id}/0/{pods[0]}", {"done.txt": b"0"}
    )
    kubelet_double.finish_pod(op.namespace, pods[0], exit_code=0)
    kubelet_double.write_container_outputs(
        op.output_root, f"{service_id}/1/{pods[1]}", {"partial.txt": b"half"}
    )
    op.wait_status(service_id, lambda s: op.replica(s, 1).get("state") == "running", "1 running")

    op.kube.request(
        "DELETE", op.analytics_path(service_id), body={"propagationPolicy": "Background"}
    )
    waiting.wait_for(
        lambda: op.get(service_id) is None,
        timeout=60,
        what="the Analytics to be gone once its outputs are collected",
        details=lambda: str(op.get(service_id)) + "\n" + op.process.process.log_tail(20),
    )
    stored = {f["metadata"]["path"]: f for f in op.outputs(service_id)}
    assert set(stored) == {"done.txt", "partial.txt"}
    assert stored["partial.txt"]["metadata"]["replica_index"] == 1
    waiting.wait_for(lambda: op.job(job_name) is None, timeout=60, what="Job garbage-collected")
    assert not (op.output_root / service_id).exists() or not any(
        (op.output_root / service_id).rglob("*.txt")
    )
