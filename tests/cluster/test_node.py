"""The node itself: real pods from a locally built image, real DNS, real logs."""

from __future__ import annotations

from dtpoc_local import waiting
from tests.cluster import _api as api
from tests.cluster.helpers import Platform


def test_indexed_job_of_two_pods_runs_to_complete_with_each_index_in_its_log(
    platform: Platform,
) -> None:
    namespace = platform.kube.create_namespace(prefix="node")
    image = platform.images["dtpoc"]
    script = "import os; print('replica', os.environ['JOB_COMPLETION_INDEX'])"
    platform.kube.request(
        "POST",
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
        body=api.job("two", image, script, completions=2),
    )
    status = waiting.wait_for(
        lambda: api.complete(platform, namespace, "two"),
        timeout=api.JOB_TIMEOUT,
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
    image = platform.images["dtpoc"]
    script = (
        "import socket; "
        "print(socket.gethostbyname('kubernetes.default.svc.cluster.local')); "
        "print(socket.gethostbyname('kubernetes.default'))"
    )
    platform.kube.request(
        "POST",
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
        body=api.job("dns", image, script, completions=1),
    )
    waiting.wait_for(
        lambda: api.complete(platform, namespace, "dns"),
        timeout=api.JOB_TIMEOUT,
        what="the DNS Job",
    )
    (pod,) = platform.kubectl("-n", namespace, "get", "pods", "-o", "name").split()
    service = platform.kube.request("GET", "/api/v1/namespaces/default/services/kubernetes")
    service_ip = service["spec"]["clusterIP"]
    assert platform.kubectl("-n", namespace, "logs", pod).split() == [service_ip, service_ip]
    platform.kube.delete_namespace(namespace)
