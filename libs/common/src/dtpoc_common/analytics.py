"""The Analytics resource: the contract between orchestrator and operator.

Its ``spec`` and ``status`` are the proto JSON forms (lowerCamelCase) of
``dtpoc.analytics.v1alpha1.AnalyticsSpec`` and ``AnalyticsStatus``, so the
Kubernetes custom resource (``infra/crds/analytics.yaml``) and the local
store (a MongoDB collection) hold the same documents. Both sides convert
through this module and nowhere else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor, json_format

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

#: The operator's finalizer: a deleted Analytics stays (with a deletion timestamp)
#: until the operator has collected its replicas' outputs and written the final status.
#: The orchestrator creates Kubernetes resources with it already set (one request less
#: per service than the operator patching it in); the operator adds it to resources
#: created by anyone else (kubectl), and removes it when it lets a deletion go.
FINALIZER = "dtpoc.eng.cam.ac.uk/collect-outputs"

#: Job types, replica states and phases: :mod:`dtpoc_common.vocabulary`.


def spec_to_dict(spec: analytics_pb2.AnalyticsSpec) -> dict[str, Any]:
    """The resource's ``spec`` for a proto spec (unset fields omitted).

    64-bit integers are JSON numbers, not the strings of proto JSON: the CRD
    declares them ``type: integer`` and the API server refuses strings.
    """
    return int64_as_numbers(spec.DESCRIPTOR, json_format.MessageToDict(spec))


def spec_from_dict(data: dict[str, Any]) -> analytics_pb2.AnalyticsSpec:
    """A proto spec from a resource's ``spec``; unknown fields are ignored so
    that an older reader accepts a newer writer's resource."""
    return json_format.ParseDict(data, analytics_pb2.AnalyticsSpec(), ignore_unknown_fields=True)


def merge_spec(spec: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``spec`` (resource JSON) with ``changes`` merged in as a JSON merge patch does:
    a map merges by key, anything else replaces, ``None`` removes."""
    merged = dict(spec)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_spec(merged[key], value)
        else:
            merged[key] = value
    return merged


def status_to_dict(status: analytics_pb2.AnalyticsStatus) -> dict[str, Any]:
    """The resource's ``status`` for a proto status.

    Fields at their zero value are written too: the CRD requires ``index``
    on every replica entry, and replica 0's index is proto3's default.
    64-bit integers are JSON numbers (see :func:`spec_to_dict`).
    """
    data = json_format.MessageToDict(status, always_print_fields_with_no_presence=True)
    return int64_as_numbers(status.DESCRIPTOR, data)


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


_INT64_TYPES = frozenset(
    {
        descriptor.FieldDescriptor.TYPE_INT64,
        descriptor.FieldDescriptor.TYPE_UINT64,
        descriptor.FieldDescriptor.TYPE_SINT64,
        descriptor.FieldDescriptor.TYPE_FIXED64,
        descriptor.FieldDescriptor.TYPE_SFIXED64,
    }
)


def int64_as_numbers(message: descriptor.Descriptor, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (proto JSON of a ``message``) with 64-bit integers as JSON numbers.

    Proto JSON writes int64 as strings; Kubernetes (``type: integer``) does
    not accept them. Changes ``data`` in place and returns it.
    """
    for field in message.fields:
        if field.json_name not in data:
            continue
        value = data[field.json_name]
        if field.type in _INT64_TYPES:
            if isinstance(value, list):
                data[field.json_name] = [int(v) for v in value]
            else:
                data[field.json_name] = int(value)
            continue
        nested = field.message_type
        if nested is None or nested.full_name.startswith("google.protobuf."):
            continue
        if nested.GetOptions().map_entry:
            value_field = nested.fields_by_name["value"]
            if value_field.type in _INT64_TYPES:
                data[field.json_name] = {k: int(v) for k, v in value.items()}
            elif value_field.message_type is not None:
                for item in value.values():
                    int64_as_numbers(value_field.message_type, item)
        elif isinstance(value, list):
            for item in value:
                int64_as_numbers(nested, item)
        else:
            int64_as_numbers(nested, value)
    return data


def format_time(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, to the second, as Kubernetes writes times."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- The local store: Analytics documents in a MongoDB collection -----------
#
# A local document is the resource (apiVersion, kind, metadata, spec, status)
# plus ``_id`` = the service id. MongoDB servers (FerretDB among them) refuse
# keys that contain ``.`` or start with ``$``, and label keys
# (``dtpoc.eng.cam.ac.uk/service-id``) or resource names (``nvidia.com/gpu``)
# contain dots, so every key is stored escaped: ``%`` -> ``%25``, ``.`` ->
# ``%2E``, a leading ``$`` -> ``%24``. Keys without those characters (every
# spec and status field name) are stored unchanged, so queries on
# ``spec.jobType`` or ``status.phase`` work as written. Read documents with
# :func:`resource_from_local_document`; write a status with
# ``{"$set": {"status": escape_keys(status_to_dict(status))}}``.

#: The field the local operator waits for: set (RFC 3339) when a service is
#: terminated; the operator stops the replicas, then removes the document.
LOCAL_DELETION_TIMESTAMP = "metadata.deletionTimestamp"


def escape_key(key: str) -> str:
    """A map key MongoDB accepts, reversible with :func:`unescape_key`."""
    escaped = key.replace("%", "%25").replace(".", "%2E")
    if escaped.startswith("$"):
        escaped = "%24" + escaped[1:]
    return escaped


def unescape_key(key: str) -> str:
    """The original key of :func:`escape_key`."""
    return key.replace("%24", "$").replace("%2E", ".").replace("%25", "%")


def _map_keys(value: Any, key: Callable[[str], str]) -> Any:
    """``value`` with ``key`` applied to every dict key, at every depth (a new object)."""
    if isinstance(value, dict):
        return {key(str(k)): _map_keys(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_keys(v, key) for v in value]
    return value


def escape_keys(value: Any) -> Any:
    """``value`` with every dict key escaped, at every depth (a new object)."""
    return _map_keys(value, escape_key)


def unescape_keys(value: Any) -> Any:
    """The inverse of :func:`escape_keys`."""
    return _map_keys(value, unescape_key)


def local_document(
    *,
    service_id: str,
    namespace: str,
    spec: analytics_pb2.AnalyticsSpec,
    labels: dict[str, str] | None = None,
    created_at: dt.datetime,
) -> dict[str, Any]:
    """The local store's document for a new Analytics resource (keys escaped).

    ``metadata.generation`` starts at 1 as in Kubernetes; ``status`` starts
    empty for the operator to fill.
    """
    resource = build_resource(service_id=service_id, namespace=namespace, spec=spec, labels=labels)
    resource["metadata"]["generation"] = 1
    resource["metadata"]["creationTimestamp"] = format_time(created_at)
    resource["status"] = {}
    return {"_id": service_id, **escape_keys(resource)}


def resource_from_local_document(document: dict[str, Any]) -> dict[str, Any]:
    """The resource (keys unescaped, without ``_id``) a local document holds."""
    resource: dict[str, Any] = unescape_keys({k: v for k, v in document.items() if k != "_id"})
    return resource
