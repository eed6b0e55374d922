"""The real kube-apiserver's verdict on the chart.

1. Every manifest ``helm template`` renders for the three supported shapes is
   accepted by server-side apply with ``dryRun=All`` and strict field
   validation, after ``kubectl apply -f infra/crds``, in a fresh namespace
   that enforces Pod Security "restricted" (and warns about it: any warning
   fails the test).
2. A real ``helm install`` / ``upgrade`` / ``uninstall`` / reinstall into a
   namespace: generated credentials survive upgrades and reinstalls (``lookup``
   and ``helm.sh/resource-policy: keep``), and each ServiceAccount may do
   exactly what its component needs (asked of the apiserver's RBAC through
   impersonation).

No kubelet runs here: pods stay Pending, which is all these checks need.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from dtpoc_local.kube import KubeCluster
from tests.chart import chart

pytestmark = [pytest.mark.kube, pytest.mark.slow]

FIELD_MANAGER = "dtpoc-chart-tests"


@pytest.fixture(scope="module")
def crds_applied(kube: KubeCluster) -> KubeCluster:
    """``kubectl apply -f infra/crds``, exactly as docs/deploy.md says, then wait Established."""
    result = kube.kubectl("apply", "-f", str(chart.CRD_DIR), check=False)
    assert result.returncode == 0, result.stderr
    kube.wait_crd_established("analytics.eng.cam.ac.uk")
    return kube


@pytest.fixture
def restricted_namespace(kube: KubeCluster, kube_namespace: str) -> str:
    """A fresh namespace whose Pod Security admission enforces and warns "restricted"."""
    labels = {
        f"pod-security.kubernetes.io/{mode}": level
        for mode in ("enforce", "warn", "audit")
        for level in ("restricted",)
    } | {f"pod-security.kubernetes.io/{m}-version": "latest" for m in ("enforce", "warn")}
    kube.request(
        "PATCH",
        f"/api/v1/namespaces/{kube_namespace}",
        body={"metadata": {"labels": labels}},
        content_type="application/merge-patch+json",
    )
    return kube_namespace


class Discovery:
    """Maps apiVersion + kind to a REST path, from the apiserver's own discovery documents."""

    def __init__(self, kube: KubeCluster) -> None:
        self._kube = kube
        self._lists: dict[str, list[dict[str, Any]]] = {}

    def path(self, manifest: dict[str, Any]) -> str:
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if base not in self._lists:
            self._lists[base] = self._kube.request("GET", base)["resources"]
        resource = next(
            (r for r in self._lists[base] if r["kind"] == kind and "/" not in r["name"]), None
        )
        assert resource is not None, f"the apiserver serves no {kind} in {api_version}"
        name = manifest["metadata"]["name"]
        if resource["namespaced"]:
            namespace = manifest["metadata"]["namespace"]
            return f"{base}/namespaces/{namespace}/{resource['name']}/{name}"
        return f"{base}/{resource['name']}/{name}"


def dry_run_apply(kube: KubeCluster, path: str, manifest: dict[str, Any]) -> list[str]:
    """Server-side apply ``manifest`` with dryRun=All; return the apiserver's warnings.

    Raises ApiException when the apiserver refuses it (schema, strict field
    validation, admission).
    """
    api = kube.admin
    serialized = api.param_serialize(
        method="PATCH",
        resource_path=path,
        query_params=[
            ("dryRun", "All"),
            ("fieldManager", FIELD_MANAGER),
            ("force", "true"),
            ("fieldValidation", "Strict"),
        ],
        header_params={
            "Content-Type": "application/apply-patch+yaml",
            "Accept": "application/json",
        },
        body=json.dumps(manifest),
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*serialized)
    body = response.read().decode(errors="replace")  # type: ignore[no-untyped-call]
    if not 200 <= response.status <= 299:
        raise ApiException(status=response.status, reason=body)
    headers = response.getheaders()  # type: ignore[no-untyped-call]
    return list(headers.get_all("Warning") or [])


@pytest.mark.parametrize("shape", list(chart.SHAPES))
def test_apiserver_accepts_every_rendered_manifest(
    crds_applied: KubeCluster, restricted_namespace: str, shape: str
) -> None:
    kube = crds_applied
    rendered = chart.render(chart.SHAPES[shape], namespace=restricted_namespace)
    discovery = Discovery(kube)
    refused: list[str] = []
    warnings: list[str] = []
    for manifest in rendered.manifests:
        where = f"{manifest['kind']}/{manifest['metadata']['name']}"
        try:
            warnings += [
                f"{where}: {w}" for w in dry_run_apply(kube, discovery.path(manifest), manifest)
            ]
        except ApiException as error:
            refused.append(f"{where}: {error.status} {error.reason}")
    assert refused == []
    assert warnings == []
    assert len(rendered.manifests) >= 15


def test_the_dry_run_check_has_teeth(crds_applied: KubeCluster, restricted_namespace: str) -> None:
    """A pod template that breaks "restricted" warns; an unknown field is refused."""
    kube = crds_applied
    rendered = chart.render(namespace=restricted_namespace)
    deployment = rendered.named("Deployment", "dtpoc-files")
    path = Discovery(kube).path(deployment)
    assert dry_run_apply(kube, path, deployment) == []

    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["allowPrivilegeEscalation"] = True
    warnings = dry_run_apply(kube, path, deployment)
    assert any("PodSecurity" in w and "allowPrivilegeEscalation" in w for w in warnings), warnings

    container["securityContext"]["allowPrivilegeEscalation"] = False
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(ApiException) as refused:
        dry_run_apply(kube, path, deployment)
    assert "readinesProbe" in str(refused.value.reason)


# --- a real install -------------------------------------------------------------------------


def _helm(kube: KubeCluster, *args: str) -> str:
    return chart.helm(*args, kubeconfig=kube.kubeconfig_path)


def _secrets(kube: KubeCluster, namespace: str) -> dict[str, dict[str, str]]:
    items = kube.request("GET", f"/api/v1/namespaces/{namespace}/secrets")["items"]
    return {
        s["metadata"]["name"]: s.get("data", {})
        for s in items
        if s["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "dtpoc"
    }


def _allowed(kube: KubeCluster, account: str, namespace: str, **attributes: str) -> bool:
    """Whether ServiceAccount ``namespace/account`` may do ``attributes`` (verb, resource...)."""
    review = kube.request(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        body={
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": namespace, **attributes}},
        },
        api=kube.as_service_account(namespace, account),
    )
    return bool(review["status"]["allowed"])


@pytest.fixture
def installed(crds_applied: KubeCluster, restricted_namespace: str) -> Iterator[str]:
    """The chart installed for real (default values) as release ``dtpoc``."""
    kube = crds_applied
    _helm(kube, "install", "dtpoc", str(chart.CHART_DIR), "--namespace", restricted_namespace)
    yield restricted_namespace
    _helm(kube, "uninstall", "dtpoc", "--namespace", restricted_namespace, "--ignore-not-found")


def test_generated_credentials_survive_upgrade_and_reinstall(
    crds_applied: KubeCluster, installed: str
) -> None:
    kube, namespace = crds_applied, installed
    notes = _helm(kube, "get", "notes", "dtpoc", "--namespace", namespace)
    assert f"kubectl -n {namespace} get secret dtpoc-gateway-auth" in notes
    assert f"kubectl -n {namespace} port-forward svc/dtpoc-grafana 3000:80" in notes
    first = _secrets(kube, namespace)
    assert {"dtpoc-mongodb-auth", "dtpoc-gateway-auth", "dtpoc-influxdb-auth"} <= set(first)

    _helm(kube, "upgrade", "dtpoc", str(chart.CHART_DIR), "--namespace", namespace,
          "--set", "telegraf.agent.interval=30s")  # fmt: skip
    assert _secrets(kube, namespace) == first
    config = kube.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/dtpoc-telegraf-light")
    assert 'interval = "30s"' in config["data"]["telegraf.conf"]

    # Uninstall keeps the credentials (the data volumes outlive the release too) and the
    # output claim; installing again adopts them instead of generating new passwords.
    _helm(kube, "uninstall", "dtpoc", "--namespace", namespace)
    assert _secrets(kube, namespace) == first
    kube.request("GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/dtpoc-output")
    _helm(kube, "install", "dtpoc", str(chart.CHART_DIR), "--namespace", namespace)
    assert _secrets(kube, namespace) == first


def test_each_service_account_may_do_exactly_its_job(
    crds_applied: KubeCluster, installed: str
) -> None:
    kube, namespace = crds_applied, installed
    analytics = {"group": "eng.cam.ac.uk", "resource": "analytics"}
    for verb in ("get", "list", "watch", "create", "patch", "delete"):
        assert _allowed(kube, "dtpoc-orchestrator", namespace, verb=verb, **analytics), verb
    assert not _allowed(kube, "dtpoc-orchestrator", namespace, verb="update", **analytics)
    assert not _allowed(
        kube, "dtpoc-orchestrator", namespace, verb="patch", subresource="status", **analytics
    )
    for account in ("dtpoc-orchestrator", "dtpoc-gateway", "dtpoc-files"):
        assert not _allowed(kube, account, namespace, verb="get", resource="secrets")
        assert not _allowed(kube, account, namespace, verb="create", resource="pods")
    for account in ("dtpoc-gateway", "dtpoc-files"):
        assert not _allowed(kube, account, namespace, verb="list", **analytics)
    # Nothing reaches beyond the release's namespace.
    assert not _allowed(kube, "dtpoc-orchestrator", "default", verb="list", **analytics)

    # The operator may do what its Role file lists, and no more than that on secrets.
    operator = chart.render(namespace=namespace).named("Role", "dtpoc-operator")
    for rule in operator["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                name, _, sub = resource.partition("/")
                for verb in rule["verbs"]:
                    extra = {"subresource": sub} if sub else {}
                    assert _allowed(
                        kube, "dtpoc-operator", namespace,
                        verb=verb, group=group, resource=name, **extra,
                    ), (verb, group, resource)  # fmt: skip
    secrets_rule = any("secrets" in r["resources"] for r in operator["rules"])
    assert _allowed(kube, "dtpoc-operator", namespace, verb="list", resource="secrets") == (
        secrets_rule
    )


def test_orchestrator_account_can_launch_and_terminate_an_analytics(
    crds_applied: KubeCluster, installed: str
) -> None:
    kube, namespace = crds_applied, installed
    api = kube.as_service_account(namespace, "dtpoc-orchestrator")
    path = f"/apis/eng.cam.ac.uk/v1alpha1/namespaces/{namespace}/analytics"
    name = "669a52d1364a1b751c550d56"
    kube.request(
        "POST",
        path,
        api=api,
        body={
            "apiVersion": "eng.cam.ac.uk/v1alpha1",
            "kind": "Analytics",
            "metadata": {"name": name},
            "spec": {
                "image": "ghcr.io/cam-digital-hospitals/digital-hosp-des",
                "jobType": "ondemand",
                "reps": 2,
                "env": {"SIM_HOURS": "1176"},
            },
        },
    )
    assert [i["metadata"]["name"] for i in kube.request("GET", path, api=api)["items"]] == [name]
    # pods it may list (a running replica's log is read through them), nothing more
    kube.request("GET", f"/api/v1/namespaces/{namespace}/pods", api=api)
    for method, other in (
        ("DELETE", f"/api/v1/namespaces/{namespace}/pods/any"),
        ("GET", f"/api/v1/namespaces/{namespace}/secrets"),
    ):
        with pytest.raises(ApiException) as refused:
            kube.request(method, other, api=api)
        assert refused.value.status == 403, (method, other)
    kube.request("DELETE", f"{path}/{name}", api=api)
