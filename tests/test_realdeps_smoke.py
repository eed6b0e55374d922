"""Smoke tests: each real dependency behaves like the real thing the platform relies on."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import gridfs
import pymongo
import pymongo.errors
import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from dtpoc_local import binaries
from dtpoc_local.kube import KubeCluster
from dtpoc_local.waiting import WaitTimeout, wait_for
from tests.realdeps.kubelet_double import KubeletDouble

MongoClient = pymongo.MongoClient[dict[str, Any]]

# --- MongoDB protocol (FerretDB unless you bring your own) -----------------------------------


@pytest.mark.slow
def test_gridfs_round_trips_a_20_mib_file(mongo_client: MongoClient, mongo_db_name: str) -> None:
    data = os.urandom(20 * 1024 * 1024)
    bucket = gridfs.GridFSBucket(mongo_client[mongo_db_name], bucket_name="fs")

    file_id = bucket.upload_from_stream(
        "big.bin", data, metadata={"service_id": "s1", "replica_index": 0}
    )
    with bucket.open_download_stream(file_id) as stream:
        downloaded = stream.read()
        assert stream.metadata == {"service_id": "s1", "replica_index": 0}

    assert len(downloaded) == len(data)
    assert hashlib.sha256(downloaded).hexdigest() == hashlib.sha256(data).hexdigest()
    assert [f._id for f in bucket.find({"metadata.service_id": "s1"})] == [file_id]
    bucket.delete(file_id)
    assert mongo_client[mongo_db_name]["fs.chunks"].count_documents({"files_id": file_id}) == 0


def test_crud_and_unique_index_behave_like_mongodb(
    mongo_client: MongoClient, mongo_db_name: str
) -> None:
    services = mongo_client[mongo_db_name]["services"]

    services.create_index([("name", pymongo.ASCENDING)], unique=True)
    inserted = services.insert_one({"name": "sim-a", "reps": 2, "tags": ["icu"]})
    assert services.find_one({"_id": inserted.inserted_id}, {"_id": 0}) == {
        "name": "sim-a",
        "reps": 2,
        "tags": ["icu"],
    }

    with pytest.raises(pymongo.errors.DuplicateKeyError):
        services.insert_one({"name": "sim-a"})

    updated = services.update_one({"name": "sim-a"}, {"$inc": {"reps": 3}, "$push": {"tags": "er"}})
    assert updated.modified_count == 1
    assert services.find_one({"name": "sim-a"}, {"_id": 0, "reps": 1, "tags": 1}) == {
        "reps": 5,
        "tags": ["icu", "er"],
    }

    assert services.delete_one({"name": "sim-a"}).deleted_count == 1
    assert services.count_documents({}) == 0


# --- Kubernetes (local control plane unless you bring your own) ------------------------------

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.test"},
    "spec": {
        "group": "example.test",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                                "required": ["size"],
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


@pytest.mark.kube
def test_crd_becomes_established_and_validates_custom_objects(
    kube: KubeCluster, kube_namespace: str
) -> None:
    crd_name = kube.create_crd(WIDGET_CRD)
    try:
        objects = kube.custom_objects()
        widget = {"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "w1"}}

        objects.create_namespaced_custom_object(
            "example.test", "v1", kube_namespace, "widgets", {**widget, "spec": {"size": 3}}
        )
        stored = kube.request(
            "GET", f"/apis/example.test/v1/namespaces/{kube_namespace}/widgets/w1"
        )
        assert stored["spec"] == {"size": 3}

        with pytest.raises(ApiException) as invalid:
            objects.create_namespaced_custom_object(
                "example.test",
                "v1",
                kube_namespace,
                "widgets",
                {**widget, "metadata": {"name": "w2"}, "spec": {"size": 0}},
            )
        assert invalid.value.status == 422
    finally:
        kube.apiextensions().delete_custom_resource_definition(crd_name)


@pytest.mark.kube
def test_job_completes_when_the_kubelet_double_finishes_its_pods(
    kube: KubeCluster, kube_namespace: str, kubelet_double: KubeletDouble, tmp_path: Path
) -> None:
    job = k8s.V1Job(
        metadata=k8s.V1ObjectMeta(name="replicas"),
        spec=k8s.V1JobSpec(
            completions=2,
            parallelism=2,
            completion_mode="Indexed",
            backoff_limit=0,
            template=k8s.V1PodTemplateSpec(
                spec=k8s.V1PodSpec(
                    restart_policy="Never",
                    containers=[
                        k8s.V1Container(name="main", image="example.test/sim:1", args=["run"])
                    ],
                )
            ),
        ),
    )
    kube.batch().create_namespaced_job(kube_namespace, job)

    # The real Job controller creates the pods; nothing schedules or runs them.
    pods = kubelet_double.wait_for_job_pods(kube_namespace, "replicas", count=2)
    names = [p["metadata"]["name"] for p in pods]
    assert sorted(KubeletDouble.completion_index(p) or 0 for p in pods) == [0, 1]
    assert all(p["status"]["phase"] == "Pending" and "nodeName" not in p["spec"] for p in pods)
    job_path = f"/apis/batch/v1/namespaces/{kube_namespace}/jobs/replicas"

    for name in names:
        running = kubelet_double.set_pod_running(kube_namespace, name)
        assert running["status"]["phase"] == "Running"
        assert running["spec"]["nodeName"] == "kubelet-double"
    wait_for(
        lambda: kube.request("GET", job_path)["status"].get("ready") == 2,
        timeout=30,
        what="the Job controller to count 2 ready pods",
    )

    for pod in pods:
        index = KubeletDouble.completion_index(pod)
        written = KubeletDouble.write_container_outputs(
            tmp_path, f"svc-1/{index}", {"result.txt": f"replica {index}\n".encode()}
        )
        assert written == [tmp_path.resolve() / f"svc-1/{index}/result.txt"]
        finished = kubelet_double.finish_pod(kube_namespace, pod["metadata"]["name"])
        assert finished["status"]["phase"] == "Succeeded"
        terminated = finished["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")

    def complete() -> dict[str, Any] | None:
        status: dict[str, Any] = kube.request("GET", job_path)["status"]
        done = any(
            c["type"] == "Complete" and c["status"] == "True"
            for c in status.get("conditions") or []
        )
        return status if done else None

    status = wait_for(complete, timeout=60, what="Job replicas to be Complete")
    assert status["succeeded"] == 2
    assert status["completedIndexes"] == "0,1"
    assert (tmp_path / "svc-1/1/result.txt").read_text() == "replica 1\n"


@pytest.mark.kube
def test_a_failed_pod_fails_the_job_with_the_reported_exit_code(
    kube: KubeCluster, kube_namespace: str, kubelet_double: KubeletDouble
) -> None:
    job = k8s.V1Job(
        metadata=k8s.V1ObjectMeta(name="doomed"),
        spec=k8s.V1JobSpec(
            backoff_limit=0,
            template=k8s.V1PodTemplateSpec(
                spec=k8s.V1PodSpec(
                    restart_policy="Never",
                    containers=[k8s.V1Container(name="main", image="example.test/sim:1")],
                )
            ),
        ),
    )
    kube.batch().create_namespaced_job(kube_namespace, job)
    [pod] = kubelet_double.wait_for_job_pods(kube_namespace, "doomed", count=1)

    finished = kubelet_double.finish_pod(
        kube_namespace, pod["metadata"]["name"], exit_code=3, message="boom"
    )
    assert finished["status"]["phase"] == "Failed"
    terminated = finished["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (
        3,
        "Error",
        "boom",
    )

    def failed_condition() -> dict[str, Any] | None:
        job_path = f"/apis/batch/v1/namespaces/{kube_namespace}/jobs/doomed"
        conditions = kube.request("GET", job_path)["status"].get("conditions") or []
        return next((c for c in conditions if c["type"] == "Failed"), None)

    condition = wait_for(failed_condition, timeout=60, what="Job doomed to be Failed")
    assert (condition["status"], condition["reason"]) == ("True", "BackoffLimitExceeded")


@pytest.mark.kube
def test_the_apiserver_serves_pod_logs_the_kubelet_double_holds_and_follows_them(
    kube: KubeCluster, kube_namespace: str, kubelet_double: KubeletDouble
) -> None:
    pod = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="chatty"),
        spec=k8s.V1PodSpec(
            restart_policy="Never",
            init_containers=[k8s.V1Container(name="fetch", image="example.test/f:1")],
            containers=[k8s.V1Container(name="main", image="example.test/sim:1")],
        ),
    )
    core = kube.core()
    core.create_namespaced_pod(kube_namespace, pod)
    kubelet_double.set_pod_running(kube_namespace, "chatty")
    kubelet_double.print_logs(kube_namespace, "chatty", "main", ["one", "two", "three"])

    def log(**query: Any) -> str:
        return str(
            core.read_namespaced_pod_log("chatty", kube_namespace, container="main", **query)
        )

    assert log() == "one\ntwo\nthree\n"
    assert log(tail_lines=1) == "three\n"
    stamped = log(timestamps=True).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "two", "three"]
    assert stamped[0].split(" ", 1)[0].endswith("Z")
    assert log(limit_bytes=6) == "one\ntw"
    assert log(since_seconds=3600) == "one\ntwo\nthree\n"

    followed = core.read_namespaced_pod_log(
        "chatty", kube_namespace, container="main", follow=True, _preload_content=False
    )
    assert followed.read(14) == b"one\ntwo\nthree\n"
    kubelet_double.print_logs(kube_namespace, "chatty", "main", ["four"])
    assert followed.read(5) == b"four\n"
    kubelet_double.finish_pod(kube_namespace, "chatty", exit_code=1)
    assert followed.read() == b""  # the follow ends with the container


def test_container_outputs_cannot_escape_the_output_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="escapes"):
        KubeletDouble.write_container_outputs(tmp_path, "svc-1/0", {"../../../x": b""})
    with pytest.raises(ValueError, match="escapes"):
        KubeletDouble.write_container_outputs(tmp_path, "/etc", {"x": b""})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.kube
def test_rbac_lets_a_service_account_list_pods_but_not_create_secrets(
    kube: KubeCluster, kube_namespace: str
) -> None:
    ns = kube_namespace
    kube.core().create_namespaced_service_account(
        ns, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="reader"))
    )
    rbac = kube.rbac()
    rbac.create_namespaced_role(
        ns,
        k8s.V1Role(
            metadata=k8s.V1ObjectMeta(name="pod-reader"),
            rules=[k8s.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        ns,
        k8s.V1RoleBinding(
            metadata=k8s.V1ObjectMeta(name="reader-reads-pods"),
            role_ref=k8s.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="pod-reader"
            ),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=ns)],
        ),
    )
    as_reader = k8s.CoreV1Api(kube.as_service_account(ns, "reader"))

    def may_list_pods() -> bool:
        try:
            as_reader.list_namespaced_pod(ns)
        except ApiException as error:
            if error.status == 403:  # the authorizer's cache has not seen the binding yet
                return False
            raise
        return True

    wait_for(may_list_pods, timeout=30, what="RBAC to allow reader to list pods")

    with pytest.raises(ApiException) as forbidden:
        as_reader.create_namespaced_secret(
            ns, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="nope"), string_data={"k": "v"})
        )
    assert forbidden.value.status == 403
    assert "system:serviceaccount:" + ns + ":reader" in str(forbidden.value.body)


# --- tools ----------------------------------------------------------------------------------


def test_helm_is_the_pinned_version(helm_bin: Path) -> None:
    out = subprocess.run(
        [str(helm_bin), "version", "--template", "{{.Version}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out.strip() == binaries.version("helm")


def test_buf_is_the_pinned_version(buf_bin: Path) -> None:
    out = subprocess.run(
        [str(buf_bin), "--version"], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == binaries.version("buf").removeprefix("v")


# --- utilities ------------------------------------------------------------------------------


def test_wait_for_returns_the_value_or_fails_naming_what_it_awaited() -> None:
    answers = iter([None, [], ["pod-a"]])
    assert wait_for(lambda: next(answers), timeout=5, what="pods", interval=0.001) == ["pod-a"]

    with pytest.raises(WaitTimeout, match=r"after 0.05s waiting for the moon.*\nlast: none"):
        wait_for(lambda: False, timeout=0.05, what="the moon", details=lambda: "last: none")
