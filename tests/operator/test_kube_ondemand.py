"""An ondemand service on Kubernetes: Indexed Job, replicas finishing one by one, outputs in Files.

Real kube-apiserver and controller-manager (the Job controller creates the
pods), real Files service. There is no kubelet here: **the test plays the
kubelet** through ``kubelet_double`` — it reports pods running and finished
and writes the files the container would have written to its output volume.
"""

from __future__ import annotations

import json

from dtpoc_local import waiting
from tests.operator.helpers import INIT_IMAGE, OUTPUT_PVC, KubeOperator, child_name
from tests.realdeps.kubelet_double import KubeletDouble


def test_indexed_job_spec_field_by_field(kube_operator: KubeOperator) -> None:
    """What the operator asks Kubernetes for is exactly the documented Indexed Job."""
    op = kube_operator
    input_id = op.upload("input.xlsx", b"workbook bytes")
    service_id = op.create(
        {
            "image": "ghcr.io/example/lab-simulation",
            "version": "1.2",
            "jobType": "ondemand",
            "reps": 3,
            "parallelism": 2,
            "backoffLimitPerIndex": 1,
            "activeDeadlineSeconds": 900,
            "ttlSecondsAfterFinished": 3600,
            "command": ["python", "-m", "sim"],
            "args": ["--hours", "10"],
            "env": {"SIM_HOURS": "10", "OUTPUT_FOLDER": "/elsewhere"},
            "inputFiles": {input_id: "input.xlsx"},
            "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "512Mi"}},
        }
    )
    job = op.wait_job(child_name(service_id))
    meta, spec = job["metadata"], job["spec"]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "dtpoc-operator"
    assert meta["labels"]["dtpoc.eng.cam.ac.uk/service-id"] == service_id
    owner = meta["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Analytics", service_id, True)
    assert owner["uid"] == op.get(service_id)["metadata"]["uid"]  # type: ignore[index]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == 3
    assert spec["parallelism"] == 2
    assert spec["backoffLimitPerIndex"] == 1
    assert spec["backoffLimit"] == 6  # the most failures the per-index limits allow
    assert spec["activeDeadlineSeconds"] == 900
    assert spec["ttlSecondsAfterFinished"] == 3600
    assert spec["podFailurePolicy"]["rules"][0]["action"] == "Ignore"
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["output"]["persistentVolumeClaim"]["claimName"] == OUTPUT_PVC
    assert "emptyDir" in volumes["input"]

    (init,) = pod["initContainers"]
    assert init["image"] == INIT_IMAGE
    assert init["command"] == ["dtpoc-fetch-inputs"]
    init_env = {e["name"]: e.get("value") for e in init["env"]}
    assert json.loads(init_env["DTPOC_FETCH_INPUTS"]) == [
        {"file_id": input_id, "name": "input.xlsx"}
    ]
    assert init_env["DTPOC_FETCH_FILES_ADDRESS"] == op.process.env["DTPOC_OPERATOR_FILES_ADDRESS"]
    assert {m["mountPath"] for m in init["volumeMounts"]} == {"/input"}

    (main,) = pod["containers"]
    assert main["image"] == "ghcr.io/example/lab-simulation:1.2"
    assert main["command"] == ["python", "-m", "sim"]
    assert main["args"] == ["--hours", "10"]
    assert main["resources"] == {"requests": {"cpu": "250m"}, "limits": {"memory": "512Mi"}}
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert mounts["/output"]["subPathExpr"] == (
        "$(DTPOC_SERVICE_ID)/$(JOB_COMPLETION_INDEX)/$(RUN_ID)"
    ), "each attempt (pod) of an index writes a folder of its own"
    assert mounts["/input"]["readOnly"] is True
    env = {e["name"]: e for e in main["env"]}
    assert env["DTPOC_SERVICE_ID"]["value"] == service_id
    assert env["RUN_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    index_path = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert env["REPLICA_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == index_path
    assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == index_path
    assert env["OUTPUT_FOLDER"]["value"] == "/output"  # the platform's, not the spec's
    assert env["INPUT_FOLDER"]["value"] == "/input"
    assert env["INPUT_INPUT_XLSX"]["value"] == "/input/input.xlsx"
    assert env["SIM_HOURS"]["value"] == "10"


def test_replicas_finish_one_by_one_and_outputs_land_in_files(
    kube_operator: KubeOperator, kubelet_double: KubeletDouble
) -> None:
    """Status counts and per-replica outputs follow each replica the kubelet (double) finishes."""
    op = kube_operator
    service_id = op.create(
        {"image": "ghcr.io/example/sim", "jobType": "ondemand", "reps": 3, "command": ["run"]}
    )
    job_name = child_name(service_id)
    op.wait_job(job_name)
    op.wait_status(service_id, lambda s: s.get("total") == 3, "status with 3 replicas")
    pods = kubelet_double.wait_for_job_pods(op.namespace, job_name, count=3)
    by_index = {kubelet_double.completion_index(p): p["metadata"]["name"] for p in pods}
    for index in range(3):
        kubelet_double.set_pod_running(op.namespace, by_index[index])
    op.wait_status(service_id, lambda s: s.get("active") == 3, "3 replicas running")

    expected: dict[int, dict[str, bytes]] = {}
    for index in range(3):
        files = {
            "summary.json": json.dumps({"replica": index, "kpi": 10 + index}).encode(),
            "plots/hist.csv": f"bin,count\n{index},1\n".encode(),
        }
        expected[index] = files
        kubelet_double.write_container_outputs(
            op.output_root, f"{service_id}/{index}/{by_index[index]}", files
        )
        kubelet_double.finish_pod(op.namespace, by_index[index], exit_code=0)
        status = op.wait_status(
            service_id,
            lambda s, i=index: op.replica(s, i).get("outputsCollected") is True,
            f"replica {index} collected",
        )
        replica = op.replica(status, index)
        assert replica["state"] == "succeeded"
        assert replica["podName"] == by_index[index]
        assert replica["run"] == service_id
        assert len(replica["outputFileIds"]) == 2
        assert status["succeeded"] == index + 1
        # Collected copies are removed from the volume (right after the status write).
        folder = op.output_root / service_id / str(index)
        waiting.wait_for(lambda f=folder: not f.exists(), timeout=10, what=f"{folder} removed")

    status = op.wait_status(service_id, lambda s: s.get("phase") == "succeeded", "succeeded")
    assert (status["succeeded"], status["failed"], status["active"], status["total"]) == (
        3,
        0,
        0,
        3,
    )
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Complete"]["status"] == "True"
    assert conditions["OutputsCollected"]["status"] == "True"
    assert conditions["Failed"]["status"] == "False"
    assert status["completionTime"]
    assert status["observedGeneration"] == op.get(service_id)["metadata"]["generation"]  # type: ignore[index]

    stored = op.outputs(service_id)
    assert len(stored) == 6
    for index in range(3):
        replica = op.replica(status, index)
        mine = [f for f in stored if f["metadata"].get("replica_index") == index]
        assert sorted(f["file_id"] for f in mine) == sorted(replica["outputFileIds"])
        for record in mine:
            meta = record["metadata"]
            assert meta["service_id"] == service_id
            assert meta["run"] == service_id
            assert op.content(record["file_id"]) == expected[index][meta["path"]]
    # Exactly one Job ever.
    assert [j["metadata"]["name"] for j in op.jobs()] == [job_name]
    metrics = op.process.metrics()
    assert 'dtpoc_operator_uploads_total{result="ok"} 6.0' in metrics
    assert 'dtpoc_operator_replicas{state="succeeded"} 3.0' in metrics
    assert "dtpoc_operator_reconciles_total" in metrics


def test_status_is_written_through_the_status_subresource_only(kube_operator: KubeOperator) -> None:
    """The operator adds its finalizer and writes status; it never touches spec or labels."""
    op = kube_operator
    spec = {"image": "ghcr.io/example/sim", "jobType": "ondemand", "reps": 1, "command": ["x"]}
    service_id = op.create(spec)
    op.wait_status(service_id, lambda s: s.get("phase") == "pending", "pending")
    obj = op.get(service_id)
    assert obj is not None
    assert obj["spec"] == spec
    assert obj["metadata"]["generation"] == 1
    assert obj["metadata"]["finalizers"] == ["dtpoc.eng.cam.ac.uk/collect-outputs"]
    annotations = obj["metadata"].get("annotations") or {}
    assert not [k for k in annotations if "kopf" in k]


def test_a_running_replica_is_shown_at_once_while_its_siblings_pods_cannot_exist(
    kube_operator: KubeOperator, kubelet_double: KubeletDouble
) -> None:
    """The first status of a new Job waits for all its pods, but never past a state
    change: with a quota that lets one pod of three exist, the service shows running
    as soon as that pod runs (the wait's own limit is a minute, the test's 60 s)."""
    op = kube_operator
    quotas = f"/api/v1/namespaces/{op.namespace}/resourcequotas"
    op.kube.request(
        "POST", quotas, body={"metadata": {"name": "one-pod"}, "spec": {"hard": {"pods": "1"}}}
    )
    # No quota controller runs here: its usage is written as that controller would.
    op.kube.request(
        "PATCH",
        f"{quotas}/one-pod/status",
        body={"status": {"hard": {"pods": "1"}, "used": {"pods": "0"}}},
        content_type="application/merge-patch+json",
    )
    service_id = op.create(
        {"image": "ghcr.io/example/sim", "jobType": "ondemand", "reps": 3, "command": ["run"]}
    )
    job_name = child_name(service_id)
    (pod,) = kubelet_double.wait_for_job_pods(op.namespace, job_name, count=1)
    kubelet_double.set_pod_running(op.namespace, pod["metadata"]["name"])
    status = op.wait_status(service_id, lambda s: s.get("active") == 1, "1 replica running")
    assert len(kubelet_double.job_pods(op.namespace, job_name)) == 1, "the quota held"
    assert (status["phase"], status["total"]) == ("running", 3)
    named = [r for r in status["replicas"] if r.get("podName")]
    assert [r["podName"] for r in named] == [pod["metadata"]["name"]]
