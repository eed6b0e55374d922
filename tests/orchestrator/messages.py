"""Request and status messages of the orchestrator tests, both tiers.

Imports protobuf and the shared codec only, so the unit tier
(``tests/unit``) uses the same valid launch as the real-dependency tests
without importing their harness.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_common import analytics


def launch_request(
    *, backend: str = "local", **fields: Any
) -> orchestrator_pb2.LaunchServiceRequest:
    """A valid ondemand launch (2 reps) unless ``fields`` say otherwise (proto JSON names)."""
    body: dict[str, Any] = {
        "image": "ghcr.io/example/lab-simulation",
        "version": "1.0",
        "description": "test service",
        "env": {"OUTPUT_FOLDER": "/output"},
        "ana": {"job_type": "ondemand", "reps": 2},
    }
    if backend == "local":
        body["command"] = ["python", "-c", "print('hello')"]
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not None}
    return json_format.ParseDict(body, orchestrator_pb2.LaunchServiceRequest())


def status_dict(**fields: Any) -> dict[str, Any]:
    """An Analytics status (resource JSON) from proto field names, via the shared codec."""
    message = json_format.ParseDict(fields, analytics_pb2.AnalyticsStatus())
    return analytics.status_to_dict(message)


def value_to_python(value: struct_pb2.Value) -> Any:
    return json_format.MessageToDict(value)


def counts(status: orchestrator_pb2.ServiceStatus) -> tuple[Any, ...]:
    """A status's phase, overall status and run counts, for one comparison."""
    return (
        status.phase,
        status.status,
        status.active_runs,
        status.succeeded_runs,
        status.failed_runs,
        status.total_runs,
    )
