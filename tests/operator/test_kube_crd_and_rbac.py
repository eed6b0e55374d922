"""The apiserver enforces the Analytics CRD's rules, and the operator's Role is exactly enough.

Real kube-apiserver: every CEL rule of ``infra/crds/analytics.yaml`` refuses a
resource that breaks it (HTTP 422). The operator's ServiceAccount, bound to
``infra/rbac/operator-role.yaml``, is refused anything outside the Role
(HTTP 403). That the operator reconciles with exactly this Role is what every
other test in this folder shows: they all run it with a TokenRequest token
of that ServiceAccount.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from dtpoc_local.kube import KubeCluster
from dtpoc_local.servers.operator import SERVICE_ACCOUNT, apply_operator_role
from tests.operator.helpers import GROUP_PATH, new_service_id

BASE = {"image": "ghcr.io/example/sim"}
HEX = "0123456789abcdef01234567"


def _create(kube: KubeCluster, namespace: str, spec: dict[str, Any], name: str = "") -> str:
    name = name or new_service_id()
    kube.request(
        "POST",
        f"{GROUP_PATH}/namespaces/{namespace}/analytics",
        body={
            "apiVersion": "eng.cam.ac.uk/v1alpha1",
            "kind": "Analytics",
            "metadata": {"name": name},
            "spec": spec,
        },
    )
    return name


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"jobType": "persistent", "reps": 2}, "a persistent service has no reps"),
        ({"jobType": "scheduled", "reps": 1}, "a scheduled service needs reps and a schedule"),
        ({"jobType": "scheduled", "schedule": "* * * * *"}, "needs reps and a schedule"),
        ({"jobType": "ondemand", "reps": 1, "port": 8080}, "has neither port nor schedule"),
        ({"jobType": "ondemand", "reps": 1, "schedule": "* * * * *"}, "neither port nor schedule"),
        ({"jobType": "ondemand", "reps": 1, "inputFiles": {"nothex": "a.csv"}}, "24-hex-digit"),
        ({"jobType": "ondemand", "reps": 1, "inputFiles": {HEX: ".."}}, "plain file name"),
        ({"jobType": "ondemand", "reps": 101}, "reps"),
        ({"jobType": "batch", "reps": 1}, "jobType"),
        ({"jobType": "ondemand", "reps": 1, "expose": True}, "only a persistent service with"),
        ({"jobType": "persistent", "expose": True}, "only a persistent service with a port"),
    ],
)
def test_invalid_resources_are_refused_by_the_apiserver(
    kube: KubeCluster, kube_namespace: str, analytics_crd: str, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ApiException) as refused:
        _create(kube, kube_namespace, {**BASE, **spec})
    assert refused.value.status == 422
    assert message in str(refused.value.body)


@pytest.mark.parametrize(
    ("spec", "change", "message"),
    [
        (
            {"jobType": "ondemand", "reps": 1},
            {"reps": 2},
            "the spec of an ondemand service is immutable",
        ),
        (
            {"jobType": "scheduled", "reps": 1, "schedule": "* * * * *"},
            {"jobType": "ondemand", "schedule": None},
            "jobType is immutable",
        ),
        (
            {"jobType": "ondemand", "reps": 1},
            {"env": {"A": "1"}, "replicaAttempts": {"0": 2}},
            "the spec of an ondemand service is immutable",
        ),
        (
            {"jobType": "ondemand", "reps": 2, "replicaAttempts": {"1": 3}},
            {"replicaAttempts": {"1": 2}},
            "never goes back",
        ),
        (
            {"jobType": "ondemand", "reps": 1},
            {"suspend": True},
            "only a scheduled service can be suspended",
        ),
        (
            {"jobType": "scheduled", "reps": 1, "schedule": "* * * * *"},
            {"replicaAttempts": {"0": 2}},
            "are for the run retryRun names: set both",
        ),
        (
            {"jobType": "ondemand", "reps": 1},
            {"retryRun": "ana-x-100"},
            "retryRun names a run of a scheduled service",
        ),
        (
            {
                "jobType": "scheduled",
                "reps": 2,
                "schedule": "* * * * *",
                "replicaAttempts": {"1": 3},
                "retryRun": "ana-x-100",
            },
            {"replicaAttempts": {"1": 2}},
            "never goes back",
        ),
    ],
)
def test_immutable_changes_are_refused(
    kube: KubeCluster,
    kube_namespace: str,
    analytics_crd: str,
    spec: dict[str, Any],
    change: dict[str, Any],
    message: str,
) -> None:
    name = _create(kube, kube_namespace, {**BASE, **spec})
    with pytest.raises(ApiException) as refused:
        kube.request(
            "PATCH",
            f"{GROUP_PATH}/namespaces/{kube_namespace}/analytics/{name}",
            body={"spec": change},
            content_type="application/merge-patch+json",
        )
    assert refused.value.status == 422
    assert message in str(refused.value.body)


def test_a_retry_may_raise_an_ondemand_replicas_attempt_and_nothing_else_changes(
    kube: KubeCluster, kube_namespace: str, analytics_crd: str
) -> None:
    name = _create(kube, kube_namespace, {**BASE, "jobType": "ondemand", "reps": 3})
    for attempts in ({"1": 2}, {"1": 3, "2": 2}):
        answer = kube.request(
            "PATCH",
            f"{GROUP_PATH}/namespaces/{kube_namespace}/analytics/{name}",
            body={"spec": {"replicaAttempts": attempts}},
            content_type="application/merge-patch+json",
        )
    assert answer["spec"]["replicaAttempts"] == {"1": 3, "2": 2}
    assert answer["metadata"]["generation"] == 3


def test_a_retry_of_another_scheduled_run_replaces_the_attempts(
    kube: KubeCluster, kube_namespace: str, analytics_crd: str
) -> None:
    spec = {**BASE, "jobType": "scheduled", "reps": 3, "schedule": "* * * * *"}
    name = _create(kube, kube_namespace, spec)
    for change in (
        {"replicaAttempts": {"0": 2, "1": 3}, "retryRun": "ana-x-100"},
        {"replicaAttempts": {"0": None, "1": 2}, "retryRun": "ana-x-105"},
    ):
        answer = kube.request(
            "PATCH",
            f"{GROUP_PATH}/namespaces/{kube_namespace}/analytics/{name}",
            body={"spec": change},
            content_type="application/merge-patch+json",
        )
    assert (answer["spec"]["retryRun"], answer["spec"]["replicaAttempts"]) == (
        "ana-x-105",
        {"1": 2},
    )


def test_scheduled_and_persistent_specs_may_change(
    kube: KubeCluster, kube_namespace: str, analytics_crd: str
) -> None:
    name = _create(
        kube, kube_namespace, {**BASE, "jobType": "scheduled", "reps": 1, "schedule": "* * * * *"}
    )
    answer = kube.request(
        "PATCH",
        f"{GROUP_PATH}/namespaces/{kube_namespace}/analytics/{name}",
        body={"spec": {"reps": 3, "schedule": "*/5 * * * *", "suspend": True}},
        content_type="application/merge-patch+json",
    )
    assert answer["metadata"]["generation"] == 2
    assert answer["spec"]["suspend"] is True


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "POST",
            "/api/v1/namespaces/{ns}/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        ),
        ("DELETE", "/api/v1/namespaces/{ns}/pods/any", None),
        ("GET", "/api/v1/namespaces/{ns}/secrets", None),
        ("GET", "/api/v1/namespaces/{ns}/configmaps", None),
        ("DELETE", GROUP_PATH + "/namespaces/{ns}/analytics/any", None),
        (
            "POST",
            GROUP_PATH + "/namespaces/{ns}/analytics",
            {
                "apiVersion": "eng.cam.ac.uk/v1alpha1",
                "kind": "Analytics",
                "metadata": {"name": "x"},
                "spec": {"image": "i", "jobType": "ondemand", "reps": 1},
            },
        ),
        ("GET", "/api/v1/namespaces", None),
        ("GET", "/apis/batch/v1/jobs", None),
        (
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "r"},
                "rules": [],
            },
        ),
    ],
)
def test_verbs_outside_the_role_are_forbidden(
    kube: KubeCluster,
    kube_namespace: str,
    analytics_crd: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    apply_operator_role(kube, kube_namespace)
    operator = kube.as_service_account(kube_namespace, SERVICE_ACCOUNT)
    with pytest.raises(ApiException) as refused:
        kube.request(method, path.format(ns=kube_namespace), body=body, api=operator)
    assert refused.value.status == 403


def test_verbs_the_operator_uses_are_allowed(
    kube: KubeCluster, kube_namespace: str, analytics_crd: str
) -> None:
    apply_operator_role(kube, kube_namespace)
    operator = kube.as_service_account(kube_namespace, SERVICE_ACCOUNT)
    ns = kube_namespace
    for path in (
        f"{GROUP_PATH}/namespaces/{ns}/analytics",
        f"/apis/batch/v1/namespaces/{ns}/jobs",
        f"/apis/batch/v1/namespaces/{ns}/cronjobs",
        f"/apis/apps/v1/namespaces/{ns}/deployments",
        f"/api/v1/namespaces/{ns}/pods",
    ):
        assert "items" in kube.request("GET", path, api=operator)
