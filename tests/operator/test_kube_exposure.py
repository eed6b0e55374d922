"""Persistent services: in the cluster only by default; exposed (the launch asks and the
operator's policy allows): behind the token check.

Real apiserver and controllers, the kubelet played by ``kubelet_double``. The
Ingress itself is checked as ingress-nginx reads it (no ingress controller
runs here): its external auth points at the gateway's ``/auth/check``, whose
own behaviour is proved in tests/gateway/test_auth_check.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from dtpoc_local import waiting
from dtpoc_operator.settings import OperatorSettings
from tests.operator.helpers import KubeOperator, child_name

AUTH_URL = "http://dtpoc-gateway.dtpoc.svc.cluster.local/auth/check"
DASHBOARD = {
    "image": "ghcr.io/example/dashboard",
    "version": "2",
    "jobType": "persistent",
    "port": 8080,
    "command": ["serve"],
}


def _get(op: KubeOperator, path: str) -> dict[str, Any] | None:
    try:
        return op.kube.request("GET", path)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def _ingress_path(op: KubeOperator, name: str = "") -> str:
    base = f"/apis/networking.k8s.io/v1/namespaces/{op.namespace}/ingresses"
    return f"{base}/{name}" if name else base


def test_by_default_a_service_with_a_port_has_no_ingress_and_an_old_open_one_goes(
    kube_operator: KubeOperator,
) -> None:
    """The operator's policy is off: even a launch that asks for exposure stays inside."""
    op = kube_operator
    service_id = op.create({**DASHBOARD, "expose": True})
    name = child_name(service_id)
    waiting.wait_for(
        lambda: _get(op, f"/api/v1/namespaces/{op.namespace}/services/{name}"),
        timeout=60,
        what="the service's ClusterIP Service",
    )
    # The status is written after every child of the pass: an Ingress would exist by now.
    op.wait_status(service_id, lambda s: s.get("observedGeneration") == 1, "generation 1")
    assert _get(op, _ingress_path(op, name)) is None

    # An Ingress an earlier operator made (open, on the predictable path) is removed.
    uid = (op.get(service_id) or {})["metadata"]["uid"]
    op.kube.request(
        "POST",
        _ingress_path(op),
        body={
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": name,
                "ownerReferences": [
                    {
                        "apiVersion": "eng.cam.ac.uk/v1alpha1",
                        "kind": "Analytics",
                        "name": service_id,
                        "uid": uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "rules": [
                    {
                        "http": {
                            "paths": [
                                {
                                    "path": f"/{service_id}",
                                    "pathType": "Prefix",
                                    "backend": {
                                        "service": {"name": name, "port": {"number": 8080}}
                                    },
                                }
                            ]
                        }
                    }
                ]
            },
        },
    )
    waiting.wait_for(
        lambda: _get(op, _ingress_path(op, name)) is None,
        timeout=60,
        what="the open Ingress removed",
        details=lambda: op.process.process.log_tail(30),
    )
    assert _get(op, f"/api/v1/namespaces/{op.namespace}/services/{name}") is not None


def test_an_exposed_service_is_behind_the_gateways_token_check_and_tls(
    kube_operator_factory: Any,
) -> None:
    op: KubeOperator = kube_operator_factory(
        env={
            "DTPOC_OPERATOR_EXPOSE_SERVICES": "true",
            "DTPOC_OPERATOR_EXPOSE_AUTH_URL": AUTH_URL,
            "DTPOC_OPERATOR_INGRESS_CLASS": "nginx",
            "DTPOC_OPERATOR_INGRESS_HOST": "dt.example.org",
            "DTPOC_OPERATOR_INGRESS_TLS_SECRET_NAME": "dtpoc-tls",
        }
    )
    # The policy allows exposure, but a launch that did not ask stays in the cluster.
    internal = op.create(DASHBOARD)
    op.wait_status(internal, lambda s: s.get("observedGeneration") == 1, "generation 1")
    assert _get(op, f"/api/v1/namespaces/{op.namespace}/services/{child_name(internal)}")
    assert _get(op, _ingress_path(op, child_name(internal))) is None

    service_id = op.create({**DASHBOARD, "expose": True})
    name = child_name(service_id)
    ingress = waiting.wait_for(
        lambda: _get(op, _ingress_path(op, name)), timeout=60, what="the exposed Ingress"
    )
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/auth-url"] == AUTH_URL
    assert annotations["nginx.ingress.kubernetes.io/auth-method"] == "GET"
    # The forwarded request's Authorization comes from the check's answer, which has
    # none: the service never receives its callers' API token.
    assert annotations["nginx.ingress.kubernetes.io/auth-response-headers"] == "Authorization"
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"secretName": "dtpoc-tls", "hosts": ["dt.example.org"]}]
    (rule,) = spec["rules"]
    assert rule["host"] == "dt.example.org"
    (path,) = rule["http"]["paths"]
    assert path["path"] == f"/{service_id}"
    assert path["backend"]["service"] == {"name": name, "port": {"number": 8080}}
    assert ingress["metadata"]["ownerReferences"][0]["name"] == service_id


def test_exposure_without_the_token_check_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DTPOC_OPERATOR_EXPOSE_SERVICES", "true")
    monkeypatch.delenv("DTPOC_OPERATOR_EXPOSE_AUTH_URL", raising=False)
    with pytest.raises(ValidationError, match="DTPOC_OPERATOR_EXPOSE_AUTH_URL"):
        OperatorSettings()
    monkeypatch.setenv("DTPOC_OPERATOR_EXPOSE_AUTH_URL", AUTH_URL)
    assert OperatorSettings().expose_services
