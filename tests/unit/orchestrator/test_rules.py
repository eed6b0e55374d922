"""The pure rules (status derivation, replica choice) on plain objects, no servers."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import errors
from dtpoc_orchestrator import domain, outputs, status


def a_status(**fields: Any) -> analytics_pb2.AnalyticsStatus:
    return json_format.ParseDict(fields, analytics_pb2.AnalyticsStatus())


def a_record(job_type: str = "ondemand", **changes: Any) -> domain.ServiceRecord:
    spec = analytics_pb2.AnalyticsSpec(image="x", job_type=job_type)
    if job_type != "persistent":
        spec.reps = 2
    record = domain.ServiceRecord(
        id="0" * 24,
        state=domain.STATE_LAUNCHED,
        created_at=0.0,
        spec=spec,
        labels={},
        namespace="n",
        backend="local",
    )
    return record.replace(**changes)


def a_resource(**status_fields: Any) -> domain.AnalyticsObject:
    return domain.AnalyticsObject(
        name="0" * 24,
        namespace="n",
        spec=analytics_pb2.AnalyticsSpec(),
        status=a_status(**status_fields),
    )


@pytest.mark.parametrize(
    ("job_type", "fields", "expected"),
    [
        ("ondemand", {"phase": "pending"}, "running"),
        ("ondemand", {"phase": "running", "active": 1}, "running"),
        ("ondemand", {"phase": "succeeded", "succeeded": 2, "total": 2}, "ok"),
        ("ondemand", {"phase": "failed", "failed": 1}, "error"),
        ("ondemand", {"phase": "succeeded", "failed": 1}, "error"),
        ("scheduled", {"phase": "running", "active": 0, "failed": 1}, "running"),
        ("persistent", {"phase": "running", "active": 1, "total": 1}, "ok"),
        ("persistent", {"phase": "running", "active": 0, "total": 1}, "running"),
        (
            "persistent",
            {
                "phase": "running",
                "active": 1,
                "total": 1,
                "conditions": [{"type": "Ready", "status": "False"}],
            },
            "running",
        ),
        ("persistent", {"phase": "failed"}, "error"),
        ("ondemand", {"phase": "terminated", "failed": 0}, "ok"),
        ("ondemand", {"phase": "mystery", "active": 1}, "running"),
        ("ondemand", {"phase": "mystery"}, "error"),
    ],
)
def test_overall_status(job_type: str, fields: dict[str, Any], expected: str) -> None:
    assert status.overall_status(job_type, a_status(**fields)) == expected


def test_terminated_records_report_no_active_replica() -> None:
    record = a_record(terminated_at=10.0)
    derived = status.derive(record, a_resource(phase="running", active=2, total=2))
    assert (derived.phase, derived.status, derived.active) == ("terminated", "error", 0)
    kept = record.replace(last_status=a_status(phase="succeeded", succeeded=2, total=2))
    derived = status.derive(kept, None)
    assert (derived.phase, derived.status, derived.succeeded) == ("terminated", "ok", 2)


def test_a_vanished_resource_is_failed_and_a_silent_one_pending() -> None:
    assert status.derive(a_record(), None).phase == "failed"
    pending = status.derive(a_record("persistent"), a_resource())
    assert (pending.phase, pending.status, pending.total) == ("pending", "running", 1)


def test_output_files_are_listed_once_in_replica_order() -> None:
    source = a_status(
        replicas=[
            {"index": 1, "state": "succeeded", "outputFileIds": ["b", "a"]},
            {"index": 0, "state": "succeeded", "outputFileIds": ["a", "c"]},
        ]
    )
    assert status.output_file_ids(source) == ("b", "a", "c")


def test_newest_entry_per_index_follows_runs_then_start_time() -> None:
    source = a_status(
        runs=[{"name": "r3"}, {"name": "r2"}],
        replicas=[
            {"index": 0, "state": "succeeded", "run": "r1", "startTime": "2026-01-01T03:00:00Z"},
            {"index": 0, "state": "running", "run": "r3", "startTime": "2026-01-01T01:00:00Z"},
            {"index": 0, "state": "succeeded", "run": "r2", "startTime": "2026-01-01T02:00:00Z"},
            {"index": 1, "state": "succeeded", "startTime": "2026-01-01T01:00:00Z"},
            {"index": 1, "state": "failed", "startTime": "2026-01-01T02:00:00Z"},
        ],
    )
    newest = outputs.newest_by_index(source)
    assert (newest[0].run, newest[0].state) == ("r3", "running")
    assert newest[1].state == "failed"


def test_finished_replica_messages() -> None:
    spec = analytics_pb2.AnalyticsSpec(job_type="ondemand", reps=1)
    with pytest.raises(
        Exception, match=r"no such replica: 1 \(the service has 1 replica, index 0\)"
    ):
        outputs.finished_replica(spec=spec, status=a_status(), idx=1)
    with pytest.raises(errors.NotFound, match=r"replica 0 has not finished \(state pending\)"):
        outputs.finished_replica(spec=spec, status=a_status(), idx=0)
