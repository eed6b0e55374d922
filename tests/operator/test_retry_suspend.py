"""Retry of failed replicas and suspension of scheduled services, in both runtimes.

The test writes the desired state exactly as the orchestrator's RetryService and
SuspendService do (``spec.replicaAttempts``, ``spec.suspend``: a merge patch of the
Analytics resource, or the local document one generation up with a journal entry);
the operator does the rest. Kubernetes: the real apiserver, Job and CronJob
controllers; the test plays the kubelet (``kubelet_double``). Local: real processes.

A suspended service is watched across two real schedule ticks (``* * * * *``: the
first two minute boundaries after the suspension is applied), so these tests wait
about two minutes each: no controller here accepts a finer schedule.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import textwrap
from collections.abc import Callable
from typing import Any

from kubernetes.client.rest import ApiException

from dtpoc_common import analytics
from dtpoc_local import waiting
from tests.operator.helpers import KubeOperator, child_name
from tests.operator.test_kube_scheduled_persistent import SCHEDULE as ONCE_A_YEAR
from tests.operator.test_kube_scheduled_persistent import trigger_run
from tests.operator.test_local_runtime import (  # noqa: F401 - the fixture is used by name
    LocalOperator,
    local_operator_factory,
)
from tests.realdeps.kubelet_double import KubeletDouble

#: Replica 1 fails on its first attempt only; every replica writes its index and attempt.
FLAKY_ONE = textwrap.dedent(
    """
    import json, os, pathlib, sys
    index, attempt = int(os.environ["REPLICA_INDEX"]), int(os.environ["DTPOC_ATTEMPT"])
    out = pathlib.Path(os.environ["OUTPUT_FOLDER"])
    (out / "result.json").write_text(json.dumps({"replica": index, "attempt": attempt}))
    sys.exit(1 if index == 1 and attempt < 2 else 0)
    """
)


def _final(status: dict[str, Any]) -> bool:
    return status.get("phase") in ("succeeded", "failed")


def _assert_retried(status: dict[str, Any], before: dict[str, Any], content: Callable) -> None:
    """3 succeeded; replica 1 at attempt 2 with its new output; 0 and 2 untouched."""
    assert status["phase"] == "succeeded", status
    assert (status["succeeded"], status["failed"], status["total"]) == (3, 0, 3)
    by_index = {r["index"]: r for r in status["replicas"]}
    assert [by_index[i]["attempt"] for i in range(3)] == [1, 2, 1]
    old = {r["index"]: r for r in before["replicas"]}
    for index in (0, 2):
        assert by_index[index]["outputFileIds"] == old[index]["outputFileIds"]
        assert by_index[index]["podName"] == old[index]["podName"]
    (file_id,) = by_index[1]["outputFileIds"]
    assert json.loads(content(file_id)) == {"replica": 1, "attempt": 2}
    assert by_index[1]["outputFileIds"] != old[1]["outputFileIds"]


# --- Kubernetes ---------------------------------------------------------------------------


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
        service_id, lambda s: s.get("phase") == "failed" and _collected(s), "failed, collected"
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
    _assert_retried(done, failed, op.content)
    # Only the failed index ran again: the first Job made no new pod.
    assert len(kubelet_double.job_pods(op.namespace, job)) == 3
    assert [j["metadata"]["name"] for j in op.jobs()] == sorted([job, retry_job])


def _collected(status: dict[str, Any]) -> bool:
    return bool(status.get("replicas")) and all(
        r.get("outputsCollected") for r in status["replicas"]
    )


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


def _two_ticks_from(moment: dt.datetime) -> dt.datetime:
    """A little after the second minute boundary following ``moment``."""
    boundary = moment.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    return boundary + dt.timedelta(minutes=1, seconds=10)


def _no_run_until(runs: Callable[[], list[str]], until: dt.datetime, what: str) -> dt.datetime:
    """Check on every poll that ``runs()`` stays empty until ``until``; fail at the first run."""

    def passed() -> bool:
        started = runs()
        assert not started, f"{what}: a run started while suspended: {started}"
        return dt.datetime.now(dt.UTC) >= until

    waiting.wait_for(
        passed, timeout=(until - dt.datetime.now(dt.UTC)).total_seconds() + 30, what=what
    )
    return until


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
    _no_run_until(
        lambda: [j["metadata"]["name"] for j in op.jobs()],
        _two_ticks_from(dt.datetime.now(dt.UTC)),
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


# --- local --------------------------------------------------------------------------------


def _patch_local(op: LocalOperator, service_id: str, changes: dict[str, Any]) -> None:
    """What the orchestrator's LocalAnalyticsStore.patch_spec writes."""
    document = op.collection.find_one({"_id": service_id})
    assert document is not None
    spec = analytics.merge_spec(analytics.unescape_keys(document["spec"]), changes)
    generation = int(document["metadata"].get("generation") or 1) + 1
    op.collection.update_one(
        {"_id": service_id},
        {"$set": {"spec": analytics.escape_keys(spec), "metadata.generation": generation}},
    )
    op.announce(service_id)


def test_local_retry_reruns_only_the_failed_index(
    local_operator_factory: Callable[..., LocalOperator],  # noqa: F811
) -> None:
    op = local_operator_factory()
    service_id = op.launch(
        {
            "image": "ghcr.io/example/sim",
            "jobType": "ondemand",
            "reps": 3,
            "command": [sys.executable, "-c", FLAKY_ONE],
        }
    )
    failed = op.wait_status(
        service_id, lambda s: s.get("phase") == "failed" and _collected(s), "failed, collected"
    )
    assert [r["attempt"] for r in failed["replicas"]] == [1, 1, 1]
    assert [r["state"] for r in failed["replicas"]] == ["succeeded", "failed", "succeeded"]
    _patch_local(op, service_id, {"replicaAttempts": {"1": 2}})
    done = op.wait_status(service_id, lambda s: s.get("phase") == "succeeded", "succeeded")
    _assert_retried(done, failed, op.files.content)
    (second,) = [r for r in done["replicas"] if r["index"] == 1]
    assert second["podName"] == f"{service_id}-1-1", "its second process"


def test_local_suspended_schedule_starts_no_run_and_resumes(
    local_operator_factory: Callable[..., LocalOperator],  # noqa: F811
) -> None:
    op = local_operator_factory()
    service_id = op.launch(
        {
            "image": "ghcr.io/example/sim",
            "jobType": "scheduled",
            "reps": 1,
            "schedule": "* * * * *",
            "suspend": True,
            "command": [sys.executable, "-c", "print('run')"],
        }
    )
    status = op.wait_status(service_id, lambda s: s.get("suspended") is True, "status suspended")
    assert status["phase"] == "pending"
    _no_run_until(
        lambda: [r["name"] for r in op.status(service_id).get("runs") or []],
        _two_ticks_from(dt.datetime.now(dt.UTC)),
        "two schedule ticks while suspended",
    )
    _patch_local(op, service_id, {"suspend": False})
    resumed = op.wait_status(
        service_id,
        lambda s: s.get("suspended") is False and bool(s.get("runs")),
        "resumed, with a run",
    )
    assert resumed["phase"] == "running"


# --- retry of a scheduled run (both runtimes) ----------------------------------------------


def _run_members(status: dict[str, Any], run: str) -> dict[int, dict[str, Any]]:
    return {r.get("index", 0): r for r in status.get("replicas") or [] if r.get("run") == run}


def _run_state(status: dict[str, Any], run: str) -> str:
    return next((r.get("state", "") for r in status.get("runs") or [] if r["name"] == run), "")


def _run_done(run: str, state: str) -> Callable[[dict[str, Any]], bool]:
    def done(status: dict[str, Any]) -> bool:
        members = _run_members(status, run)
        return (
            _run_state(status, run) == state
            and len(members) == 3
            and all(r.get("outputsCollected") for r in members.values())
        )

    return done


def _assert_run_retried(
    status: dict[str, Any], before: dict[str, Any], run: str, content: Callable
) -> None:
    """The run's replica 1 at attempt 2 with its new output; 0 and 2 untouched."""
    members, old = _run_members(status, run), _run_members(before, run)
    assert [members[i]["state"] for i in range(3)] == ["succeeded"] * 3, status
    assert [members[i]["attempt"] for i in range(3)] == [1, 2, 1]
    for index in (0, 2):
        assert members[index]["outputFileIds"] == old[index]["outputFileIds"]
        assert members[index]["podName"] == old[index]["podName"]
    (file_id,) = members[1]["outputFileIds"]
    assert json.loads(content(file_id)) == {"replica": 1, "attempt": 2}
    assert len(status["runs"]) == 1, "the retry is no new run"


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
    failed = op.wait_status(service_id, _run_done(run, "failed"), "the run failed, collected")

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
        service_id, lambda s: _run_state(s, run) == "running", "the run running again"
    )
    assert _run_members(again, run)[1]["attempt"] == 2
    name = pod["metadata"]["name"]
    kubelet_double.write_container_outputs(
        op.output_root,
        f"{service_id}/{run}/1/{name}",
        {"result.json": b'{"replica": 1, "attempt": 2}'},
    )
    kubelet_double.finish_pod(op.namespace, name, exit_code=0)
    done = op.wait_status(service_id, _run_done(run, "succeeded"), "the run succeeded")
    _assert_run_retried(done, failed, run, op.content)
    assert len(kubelet_double.job_pods(op.namespace, run)) == 3, "the run's Job made no new pod"


def test_local_retry_of_a_scheduled_run_reruns_only_its_failed_index(
    local_operator_factory: Callable[..., LocalOperator],  # noqa: F811
) -> None:
    op = local_operator_factory()
    service_id = op.launch(
        {
            "image": "ghcr.io/example/sim",
            "jobType": "scheduled",
            "reps": 3,
            "schedule": "* * * * *",
            "command": [sys.executable, "-c", FLAKY_ONE],
        }
    )
    runs = waiting.wait_for(
        lambda: op.status(service_id).get("runs"),
        timeout=150,  # the next minute boundary, on a loaded machine
        what="the first scheduled run",
    )
    run = runs[0]["name"]
    _patch_local(op, service_id, {"suspend": True})  # no second run meanwhile
    failed = op.wait_status(service_id, _run_done(run, "failed"), "the run failed, collected")
    assert [_run_members(failed, run)[i]["state"] for i in range(3)] == [
        "succeeded",
        "failed",
        "succeeded",
    ]
    _patch_local(op, service_id, {"replicaAttempts": {"1": 2}, "retryRun": run})
    done = op.wait_status(service_id, _run_done(run, "succeeded"), "the run succeeded")
    _assert_run_retried(done, failed, run, op.files.content)
