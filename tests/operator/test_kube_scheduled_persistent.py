"""Scheduled (CronJob) and persistent (Deployment + Service + Ingress) services on Kubernetes.

Real apiserver and controllers. **The test plays two missing parts**: the
kubelet (``kubelet_double``), and for scheduled runs the moment the cron
controller fires — it creates the run's Job from the CronJob's template
exactly as the controller does (owner reference, scheduled-timestamp
annotation, ``<cronjob>-<minutes>`` name) instead of waiting for a minute.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kubernetes.client.exceptions import ApiException

from dtpoc_local import waiting
from tests.operator.helpers import KubeOperator, child_name
from tests.realdeps.kubelet_double import KubeletDouble

SCHEDULE = "0 0 1 1 *"  # once a year: the cron controller will not fire during the test


def _get(op: KubeOperator, path: str) -> dict[str, Any] | None:
    try:
        return op.kube.request("GET", path)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def trigger_run(op: KubeOperator, cronjob: dict[str, Any], when: dt.datetime) -> str:
    """Create the Job the CronJob controller would create for ``when``."""
    template = cronjob["spec"]["jobTemplate"]
    name = f"{cronjob['metadata']['name']}-{int(when.timestamp() // 60)}"
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": dict(template["metadata"].get("labels") or {}),
            "annotations": {
                **(template["metadata"].get("annotations") or {}),
                "batch.kubernetes.io/cronjob-scheduled-timestamp": when.strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": cronjob["metadata"]["name"],
                    "uid": cronjob["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": template["spec"],
    }
    op.kube.request("POST", f"/apis/batch/v1/namespaces/{op.namespace}/jobs", body=body)
    return name


def test_scheduled_service_runs_are_indexed_jobs_with_their_own_outputs(
    kube_operator: KubeOperator, kubelet_double: KubeletDouble
) -> None:
    op = kube_operator
    service_id = op.create(
        {
            "image": "ghcr.io/example/sim",
            "jobType": "scheduled",
            "reps": 2,
            "schedule": SCHEDULE,
            "successfulJobsHistoryLimit": 5,
            "failedJobsHistoryLimit": 2,
            "command": ["run"],
        }
    )
    cj_path = f"/apis/batch/v1/namespaces/{op.namespace}/cronjobs/{child_name(service_id)}"
    cronjob = waiting.wait_for(lambda: _get(op, cj_path), timeout=60, what="CronJob")
    spec = cronjob["spec"]
    assert spec["schedule"] == SCHEDULE
    assert spec["concurrencyPolicy"] == "Forbid"
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (5, 2)
    job_spec = spec["jobTemplate"]["spec"]
    assert (job_spec["completionMode"], job_spec["completions"]) == ("Indexed", 2)
    (main,) = job_spec["template"]["spec"]["containers"]
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert mounts["/output"]["subPathExpr"] == (
        "$(DTPOC_SERVICE_ID)/$(DTPOC_RUN)/$(JOB_COMPLETION_INDEX)/$(RUN_ID)"
    )
    env = {e["name"]: e for e in main["env"]}
    assert env["DTPOC_RUN"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['batch.kubernetes.io/job-name']"
    )
    status = op.wait_status(service_id, lambda s: s.get("phase") == "pending", "pending")
    assert status["runs"] == []

    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    run = trigger_run(op, cronjob, when)
    pods = kubelet_double.wait_for_job_pods(op.namespace, run, count=2)
    for pod in pods:
        index = kubelet_double.completion_index(pod)
        kubelet_double.write_container_outputs(
            op.output_root,
            f"{service_id}/{run}/{index}/{pod['metadata']['name']}",
            {"kpi.json": f'{{"i": {index}}}'.encode()},
        )
        kubelet_double.finish_pod(op.namespace, pod["metadata"]["name"], exit_code=0)

    status = op.wait_status(
        service_id,
        lambda s: (
            [r.get("state") for r in s.get("runs") or []] == ["succeeded"]
            and all(r.get("outputsCollected") for r in s.get("replicas") or [])
            and len(s.get("replicas") or []) == 2
        ),
        "the run succeeded with outputs collected",
    )
    assert status["phase"] == "running"  # a scheduled service keeps running
    (entry,) = status["runs"]
    assert entry["name"] == run
    assert entry["scheduleTime"] == "2026-01-01T00:00:00Z"
    assert {r["run"] for r in status["replicas"]} == {run}
    assert (status["succeeded"], status["total"]) == (2, 2)
    stored = op.outputs(service_id)
    assert sorted((f["metadata"]["run"], f["metadata"]["replica_index"]) for f in stored) == [
        (run, 0),
        (run, 1),
    ]

    # A spec change of a scheduled service is applied to its CronJob.
    op.kube.request(
        "PATCH",
        op.analytics_path(service_id),
        body={"spec": {"schedule": "30 2 * * 1"}},
        content_type="application/merge-patch+json",
    )
    waiting.wait_for(
        lambda: (_get(op, cj_path) or {}).get("spec", {}).get("schedule") == "30 2 * * 1",
        timeout=60,
        what="CronJob schedule patched",
    )
    op.wait_status(service_id, lambda s: s.get("observedGeneration") == 2, "generation 2")


def test_persistent_service_with_port_has_service_and_ingress(
    kube_operator_factory: Any, kubelet_double: KubeletDouble
) -> None:
    op: KubeOperator = kube_operator_factory(
        env={
            "DTPOC_OPERATOR_INGRESS_CLASS": "nginx",
            # Exposure is off by default (tests/operator/test_kube_exposure.py).
            "DTPOC_OPERATOR_EXPOSE_SERVICES": "true",
            "DTPOC_OPERATOR_EXPOSE_AUTH_URL": "http://gateway.test/auth/check",
        }
    )
    service_id = op.create(
        {
            "image": "ghcr.io/example/dashboard",
            "version": "2",
            "jobType": "persistent",
            "port": 8080,
            "expose": True,
            "env": {"MODE": "a"},
            "command": ["serve"],
        }
    )
    name = child_name(service_id)
    base = f"/namespaces/{op.namespace}"
    deployment = waiting.wait_for(
        lambda: _get(op, f"/apis/apps/v1{base}/deployments/{name}"), timeout=60, what="Deployment"
    )
    assert deployment["spec"]["replicas"] == 1
    (main,) = deployment["spec"]["template"]["spec"]["containers"]
    assert main["image"] == "ghcr.io/example/dashboard:2"
    assert main["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert {m["mountPath"]: m.get("subPath") for m in main["volumeMounts"]}["/output"] == (
        f"{service_id}/0"
    )
    service = waiting.wait_for(
        lambda: _get(op, f"/api/v1{base}/services/{name}"), timeout=30, what="Service"
    )
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (8080, 8080)
    assert service["spec"]["selector"]["dtpoc.eng.cam.ac.uk/service-id"] == service_id
    ingress = waiting.wait_for(
        lambda: _get(op, f"/apis/networking.k8s.io/v1{base}/ingresses/{name}"),
        timeout=30,
        what="Ingress",
    )
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["path"] == f"/{service_id}"
    assert path["backend"]["service"] == {"name": name, "port": {"number": 8080}}
    for child in (deployment, service, ingress):
        assert child["metadata"]["ownerReferences"][0]["name"] == service_id

    # The kubelet (double) runs the pod: the service becomes available.
    pod = waiting.wait_for(
        lambda: op.kube.request(
            "GET",
            f"/api/v1{base}/pods?labelSelector=dtpoc.eng.cam.ac.uk/service-id={service_id}",
        ).get("items"),
        timeout=60,
        what="the Deployment's pod",
    )[0]
    kubelet_double.set_pod_running(op.namespace, pod["metadata"]["name"])
    status = op.wait_status(service_id, lambda s: s.get("phase") == "running", "running")
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["status"] == "True"
    assert op.replica(status, 0)["state"] == "running"

    # Spec changes are applied; dropping the port (and so the exposure, which the CRD allows
    # only with a port) removes the Service and Ingress.
    op.kube.request(
        "PATCH",
        op.analytics_path(service_id),
        body={"spec": {"env": {"MODE": "b"}, "port": None, "expose": None}},
        content_type="application/merge-patch+json",
    )

    def updated() -> bool:
        current = _get(op, f"/apis/apps/v1{base}/deployments/{name}") or {}
        containers = (
            current.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])
        )
        env = {e["name"]: e.get("value") for e in containers[0].get("env", [])}
        return env.get("MODE") == "b" and "ports" not in containers[0]

    waiting.wait_for(updated, timeout=60, what="Deployment patched with the new env")
    waiting.wait_for(
        lambda: (
            _get(op, f"/api/v1{base}/services/{name}") is None
            and _get(op, f"/apis/networking.k8s.io/v1{base}/ingresses/{name}") is None
        ),
        timeout=60,
        what="Service and Ingress removed with the port",
    )
    op.wait_status(service_id, lambda s: s.get("observedGeneration") == 2, "generation 2")
