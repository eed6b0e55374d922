"""The Analytics resource: the contract between orchestrator and operator.

Its ``spec`` and ``status`` are the proto JSON forms (lowerCamelCase) of
``dtpoc.analytics.v1alpha1.AnalyticsSpec`` and ``AnalyticsStatus``, so the
Kubernetes custom resource (``infra/crds/analytics.yaml``) and the local
store (a MongoDB collection) hold the same documents. Both sides convert
through this module and nowhere else.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from dtpoc.analytics.v1alpha1 import analytics_pb2

GROUP = "eng.cam.ac.uk"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Analytics"
PLURAL = "analytics"

#: Label on the Analytics resource and every child workload.
LABEL_SERVICE_ID = "dtpoc.eng.cam.ac.uk/service-id"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "dtpoc-operator"

#: Phases a service goes through; the last three are final.
PHASE_PENDING = "pending"
PHASE_RUNNING = "running"
PHASE_SUCCEEDED = "succeeded"
PHASE_FAILED = "failed"
PHASE_TERMINATED = "terminated"
FINAL_PHASES = frozenset({PHASE_SUCCEEDED, PHASE_FAILED, PHASE_TERMINATED})

JOB_TYPES = ("ondemand", "scheduled", "persistent")


def spec_to_dict(spec: analytics_pb2.AnalyticsSpec) -> dict[str, Any]:
    """The resource's ``spec`` for a proto spec (unset fields omitted)."""
    return json_format.MessageToDict(spec)


def spec_from_dict(data: dict[str, Any]) -> analytics_pb2.AnalyticsSpec:
    """A proto spec from a resource's ``spec``; unknown fields are ignored so
    that an older reader accepts a newer writer's resource."""
    return json_format.ParseDict(data, analytics_pb2.AnalyticsSpec(), ignore_unknown_fields=True)


def status_to_dict(status: analytics_pb2.AnalyticsStatus) -> dict[str, Any]:
    """The resource's ``status`` for a proto status."""
    return json_format.MessageToDict(status)


def status_from_dict(data: dict[str, Any] | None) -> analytics_pb2.AnalyticsStatus:
    """A proto status from a resource's ``status`` (empty when absent)."""
    return json_format.ParseDict(
        data or {}, analytics_pb2.AnalyticsStatus(), ignore_unknown_fields=True
    )


def build_resource(
    *,
    service_id: str,
    namespace: str,
    spec: analytics_pb2.AnalyticsSpec,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A complete Analytics object named by the service id."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": service_id,
            "namespace": namespace,
            "labels": {**(labels or {}), LABEL_SERVICE_ID: service_id},
        },
        "spec": spec_to_dict(spec),
    }
