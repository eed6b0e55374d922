"""A reachable Kubernetes API as admin or as someone else: :class:`KubeCluster`.

The test suite's ``kube`` fixture (``tests/realdeps/kube.py``) and ``make
cluster`` (``tools/cluster``) give one for a kubeconfig, the local control
plane's (:mod:`dtpoc_local.controlplane`) or a cluster of your own.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from uuid import uuid4

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from dtpoc_local import binaries, waiting


def _server_of(kubeconfig: Path) -> str:
    """The API server URL of the kubeconfig's current context."""
    config = yaml.safe_load(kubeconfig.read_text())
    context_name = config.get("current-context")
    context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    return str(cluster["server"])


class KubeCluster:
    """A reachable Kubernetes API and helpers to talk to it as admin or as someone else.

    ``managed`` is True when the control plane was started by these fixtures:
    then no kubelet exists, and pods run only if a test plays the kubelet with
    the ``kubelet_double`` fixture.
    """

    def __init__(self, *, kubeconfig_path: Path, managed: bool) -> None:
        self.kubeconfig_path = kubeconfig_path
        self.server = _server_of(kubeconfig_path)
        self.managed = managed
        self._admin: k8s.ApiClient | None = None

    # --- clients -----------------------------------------------------------------------------

    def api_client(self, *, impersonate: str | None = None) -> k8s.ApiClient:
        """A new client from the kubeconfig; ``impersonate`` sets ``Impersonate-User``.

        Impersonating ``system:serviceaccount:<ns>:<name>`` makes the apiserver
        add that account's groups, so RBAC answers exactly as it would for
        the pod's own token.
        """
        api: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig_path), persist_config=False
        )
        if impersonate is not None:
            api.set_default_header("Impersonate-User", impersonate)  # type: ignore[no-untyped-call]
        return api

    def close(self) -> None:
        """Close the shared admin client's connections."""
        if self._admin is not None:
            self._admin.close()  # type: ignore[no-untyped-call]
            self._admin = None

    def as_service_account(self, namespace: str, name: str) -> k8s.ApiClient:
        """A client that acts as service account ``namespace/name`` (via impersonation)."""
        return self.api_client(impersonate=f"system:serviceaccount:{namespace}:{name}")

    @property
    def admin(self) -> k8s.ApiClient:
        """The shared client of the kubeconfig's user (``system:masters`` on the local plane)."""
        if self._admin is None:
            self._admin = self.api_client()
        return self._admin

    def request(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        content_type: str = "application/json",
        api: k8s.ApiClient | None = None,
    ) -> dict[str, Any]:
        """Call the API at ``path`` and return the decoded JSON answer (``{}`` if empty).

        For when plain dicts are handier than the generated models, whose
        every field is optional; e.g. ``kube.request("GET",
        f"/apis/batch/v1/namespaces/{ns}/jobs/{name}")["status"]``. Patches
        pass ``content_type="application/merge-patch+json"`` (or
        strategic-merge / json-patch). Non-2xx answers raise ``ApiException``.
        """
        client = api or self.admin
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        serialized = client.param_serialize(
            method=method,
            resource_path=path,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = client.call_api(*serialized)
        data: bytes = response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(
                http_resp=response, body=data.decode(errors="replace"), data=None
            )
        return dict(json.loads(data)) if data else {}

    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.admin)

    def batch(self) -> k8s.BatchV1Api:
        return k8s.BatchV1Api(self.admin)

    def apps(self) -> k8s.AppsV1Api:
        return k8s.AppsV1Api(self.admin)

    def rbac(self) -> k8s.RbacAuthorizationV1Api:
        return k8s.RbacAuthorizationV1Api(self.admin)

    def custom_objects(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.admin)

    def apiextensions(self) -> k8s.ApiextensionsV1Api:
        return k8s.ApiextensionsV1Api(self.admin)

    # --- namespaces --------------------------------------------------------------------------

    def create_namespace(self, *, prefix: str = "t", wait_default_sa: bool = True) -> str:
        """Create a uniquely named namespace and return its name.

        With ``wait_default_sa`` it returns only once the controller-manager
        has created the ``default`` ServiceAccount, since until then the
        ServiceAccount admission plugin rejects pods in the namespace.
        """
        name = f"{prefix}-{uuid4().hex[:10]}"
        core = self.core()
        core.create_namespace(
            k8s.V1Namespace(
                metadata=k8s.V1ObjectMeta(name=name, labels={"dtpoc.test/ephemeral": "true"})
            )
        )
        if wait_default_sa:
            waiting.wait_for(
                lambda: _exists(lambda: core.read_namespaced_service_account("default", name)),
                timeout=30,
                what=f"ServiceAccount {name}/default (created by the serviceaccount controller)",
            )
        return name

    def delete_namespace(self, name: str) -> None:
        """Start deleting a namespace; does not wait for its finalization."""
        try:
            self.core().delete_namespace(name, propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise

    # --- custom resources --------------------------------------------------------------------

    def create_crd(self, manifest: Mapping[str, Any], *, timeout: float = 30.0) -> str:
        """Create a CustomResourceDefinition and wait until it is Established.

        Returns the CRD's name. An Established CRD serves its resource, so
        objects can be created right after this returns.
        """
        name = str(manifest["metadata"]["name"])
        self.request(
            "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=dict(manifest)
        )
        self.wait_crd_established(name, timeout=timeout)
        return name

    def wait_crd_established(self, name: str, *, timeout: float = 30.0) -> None:
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"

        def established() -> bool:
            status = self.request("GET", path).get("status") or {}
            conditions = status.get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        waiting.wait_for(established, timeout=timeout, what=f"CRD {name} to be Established")

    # --- tools -------------------------------------------------------------------------------

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the pinned ``kubectl`` against this cluster (handy when debugging a test)."""
        return subprocess.run(
            [str(binaries.path("kubectl")), f"--kubeconfig={self.kubeconfig_path}", *args],
            check=check,
            capture_output=True,
            text=True,
        )


def _exists(read: Callable[[], object]) -> bool:
    """True if ``read()`` finds the object, False on 404."""
    try:
        read()
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True
