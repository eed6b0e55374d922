"""Retry of failed replicas and suspension of scheduled services on Kubernetes.

The test writes the desired state exactly as the orchestrator's RetryService and
SuspendService do (``spec.replicaAttempts``, ``spec.suspend``: a merge patch of the
Analytics resource); the operator does the rest: the real apiserver, Job and CronJob
controllers; the test plays the kubelet (``kubelet_double``). The local runtime's
twins are in test_local_retry_suspend.py, what both share in retry_suspend.py.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from kubernetes.client.rest import ApiException

from dtpoc_local import waiting
from tests.operator.helpers import KubeOperator, child_name
from tests.operator.retry_suspend import (
    all_collected,
    assert_retried,
    assert_run_retried,
    no_run_until,
    run_done,
    run_members,
    run_state,
    two_ticks_from,
)
from tests.operator.test_kube_scheduled_persistent import SCHEDULE as ONCE_A_YEAR
from tests.operator.test_kube_scheduled_persistent import trigger_run
from tests.realdeps.kubelet_double import KubeletDouble


def _patch_spec(op: KubeOperator, service_id: str, changes: dict[str, Any]) -> None:
    op.kube.request(
        "PATCH",
        op.analytics_path(service_id),
        body={"spec": changes},
        content_type="application/merge-patch+json",
    )


def _env(pod: dict[str, Any]) -> dict[str, Any]:
    container = pod["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _cronjob(op: KubeOperator, service_id: str) -> dict[str, Any] | None:
    path = f"/apis/batch/v1/namespaces/{op.namespace}/cronjobs/{child_name(service_id)}"
    try:
        found: dict[str, Any] = op.kube.request("GET", path)
    except ApiException as error:
        if error.status == 404:
            return None  # not created yet
        raise
    return found


def _cronjob_suspended(op: KubeOperator, service_id: str) -> bool:
    path = f"/apis/batch/v1/namespaces/{op.namespace}/cronjobs/{child_name(service_id)}"
    try:
        cronjob = op.kube.request("GET", path)
    except ApiException as error:
        if error.status == 404:
            return False  # not created yet
        raise
    return cronjob["spec"].get("suspend") is True


def test_kubernetes_retry_reruns_only_the_failed_index(
    kube_operator: KubeOperator, kubelet_double: KubeletDouble
) -> None:
    op = kube_operator
    service_id = op.create(
        {"image": "ghcr.io/example/sim", "jobType": "ondemand", "reps": 3, "command": ["run"]}
    )
    job = child_name(service_id)
    for pod in kubelet_double.wait_for_job_pods(op.namespace, job, count=3):
        index = kubelet_double.completion_index(pod)
        name = pod["metadata"]["name"]
        assert _env(pod)["DTPOC_ATTEMPT"] == "1"
        result = json.dumps({"replica": index, "attempt": 1}).encode()
        kubelet_double.write_container_outputs(
            op.output_root, f"{service_id}/{index}/{name}", {"result.json": result}
        )
        kubelet_double.finish_pod(op.namespace, name, exit_code=1 if index == 1 else 0)
    failed = op.wait_status(
        service_id, lambda s: s.get("phase") == "failed" and all_collected(s), "failed, collected"
    )
    assert [r["attempt"] for r in failed["replicas"]] == [1, 1, 1]

    _patch_spec(op, service_id, {"replicaAttempts": {"1": 2}})
    retry_job = f"{job}-1-a2"
    (pod,) = kubelet_double.wait_for_job_pods(op.namespace, retry_job, count=1, timeout=60)
    env = _env(pod)
    assert (env["REPLICA_INDEX"], env["JOB_COMPLETION_INDEX"], env["DTPOC_ATTEMPT"]) == (
        "1",
        "1",
        "2",
    )
    mount = pod["spec"]["containers"][0]["volumeMounts"][0]
    assert mount["subPathExpr"] == "$(DTPOC_SERVICE_ID)/$(JOB_COMPLETION_INDEX)/$(RUN_ID)"
    running = op.wait_status(
        service_id, lambda s: s.get("phase") == "running", "running again (the retry)"
    )
    assert op.replica(running, 1)["attempt"] == 2
    name = pod["metadata"]["name"]
    kubelet_double.write_container_outputs(
        op.output_root, f"{service_id}/1/{name}", {"result.json": b'{"replica": 1, "attempt": 2}'}
    )
    kubelet_double.finish_pod(op.namespace, name, exit_code=0)
    done = op.wait_status(service_id, lambda s: s.get("phase") == "succeeded", "succeeded")
    assert_retried(done, failed, op.content)
    # Only the failed index ran again: the first Job made no new pod.
    assert len(kubelet_double.job_pods(op.namespace, job)) == 3
    assert [j["metadata"]["name"] for j in op.jobs()] == sorted([job, retry_job])


def test_kubernetes_suspended_schedule_starts_no_run_and_resumes(
    kube_operator: KubeOperator,
) -> None:
    op = kube_operator
    service_id = op.create(
        {
            "image": "ghcr.io/example/sim",
            "jobType": "scheduled",
            "reps": 1,
            "schedule": "* * * * *",
            "suspend": True,
            "command": ["run"],
        }
    )
    waiting.wait_for(
        lambda: _cronjob_suspended(op, service_id),
        timeout=60,
        what="the CronJob suspended",
    )
    status = op.wait_status(service_id, lambda s: s.get("suspended") is True, "status suspended")
    assert status["phase"] == "pending"
    no_run_until(
        lambda: [j["metadata"]["name"] for j in op.jobs()],
        two_ticks_from(dt.datetime.now(dt.UTC)),
        "two schedule ticks while suspended",
    )
    _patch_spec(op, service_id, {"suspend": False})
    waiting.wait_for(lambda: op.jobs(), timeout=90, what="a run once resumed")
    op.wait_status(
        service_id,
        lambda s: s.get("suspended") is False and bool(s.get("runs")),
        "resumed, with a run",
        timeout=90,
    )


def test_kubernetes_retry_of_a_scheduled_run_reruns_only_its_failed_index(
    kube_operator: KubeOperator, kubelet_double: KubeletDouble
) -> None:
    """The run is the Job the cron controller would make (tests/operator/
    test_kube_scheduled_persistent.py's trigger_run), for a schedule that does not fire."""
    op = kube_operator
    service_id = op.create(
        {
            "image": "ghcr.io/example/sim",
            "jobType": "scheduled",
            "reps": 3,
            "schedule": ONCE_A_YEAR,
            "command": ["run"],
        }
    )
    cronjob = waiting.wait_for(lambda: _cronjob(op, service_id), timeout=60, what="the CronJob")
    run = trigger_run(op, cronjob, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    for pod in kubelet_double.wait_for_job_pods(op.namespace, run, count=3):
        index = kubelet_double.completion_index(pod)
        name = pod["metadata"]["name"]
        result = json.dumps({"replica": index, "attempt": 1}).encode()
        kubelet_double.write_container_outputs(
            op.output_root, f"{service_id}/{run}/{index}/{name}", {"result.json": result}
        )
        kubelet_double.finish_pod(op.namespace, name, exit_code=1 if index == 1 else 0)
    failed = op.wait_status(service_id, run_done(run, "failed"), "the run failed, collected")

    _patch_spec(op, service_id, {"replicaAttempts": {"1": 2}, "retryRun": run})
    retry_job = f"{run}-1-a2"
    (pod,) = kubelet_double.wait_for_job_pods(op.namespace, retry_job, count=1, timeout=60)
    env = _env(pod)
    assert (env["REPLICA_INDEX"], env["DTPOC_ATTEMPT"], env["DTPOC_RUN"]) == ("1", "2", run)
    mount = pod["spec"]["containers"][0]["volumeMounts"][0]
    assert mount["subPathExpr"] == (
        "$(DTPOC_SERVICE_ID)/$(DTPOC_RUN)/$(JOB_COMPLETION_INDEX)/$(RUN_ID)"
    )
    again = op.wait_status(
        service_id, lambda s: run_state(s, run) == "running", "the run running again"
    )
    assert run_members(again, run)[1]["attempt"] == 2
    name = pod["metadata"]["name"]
    kubelet_double.write_container_outputs(
        op.output_root,
        f"{service_id}/{run}/1/{name}",
        {"result.json": b'{"replica": 1, "attempt": 2}'},
    )
    kubelet_double.finish_pod(op.namespace, name, exit_code=0)
    done = op.wait_status(service_id, run_done(run, "succeeded"), "the run succeeded")
    assert_run_retried(done, failed, run, op.content)
    assert len(kubelet_double.job_pods(op.namespace, run)) == 3, "the run's Job made no new pod"
