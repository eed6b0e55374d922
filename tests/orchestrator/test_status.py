"""Status answers for all three job types, derived from what the operator wrote.

The operator double writes the Analytics status as the operator would; the
assertions are on what a client of GetServiceStatus / GetService sees.
"""

from __future__ import annotations

from typing import Any

import pytest

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from tests.orchestrator.helpers import CALL_TIMEOUT, Platform, status_dict

FILE_0 = "0123456789abcdef0123456a"
FILE_1 = "0123456789abcdef0123456b"


def get_status(platform: Platform, service_id: str) -> orchestrator_pb2.ServiceStatus:
    response = platform.stub().GetServiceStatus(
        orchestrator_pb2.GetServiceStatusRequest(id=service_id), timeout=CALL_TIMEOUT
    )
    return response.status


def counts(status: orchestrator_pb2.ServiceStatus) -> tuple[Any, ...]:
    return (
        status.phase,
        status.status,
        status.active_runs,
        status.succeeded_runs,
        status.failed_runs,
        status.total_runs,
    )


LAUNCHES: dict[str, dict[str, Any]] = {
    "ondemand": {"ana": {"job_type": "ondemand", "reps": 2}},
    "scheduled": {"ana": {"job_type": "scheduled", "reps": 2, "schedule": "*/10 * * * *"}},
    "persistent": {"port": 8080, "ana": {"job_type": "persistent"}},
}


@pytest.mark.parametrize(
    ("job_type", "total"), [("ondemand", 2), ("scheduled", 0), ("persistent", 1)]
)
def test_before_the_operator_looks_the_service_is_pending(
    shared_platform: Platform, job_type: str, total: int
) -> None:
    service_id = shared_platform.launch(**LAUNCHES[job_type])
    status = get_status(shared_platform, service_id)
    assert counts(status) == ("pending", "running", 0, 0, 0, total)
    assert status.job_type == job_type
    assert list(status.output_files) == []


def test_ondemand_running_then_succeeded(shared_platform: Platform) -> None:
    service_id = shared_platform.launch(**LAUNCHES["ondemand"])
    shared_platform.operator.write_status(
        service_id,
        status_dict(
            phase="running",
            active=1,
            succeeded=1,
            total=2,
            start_time="2026-01-01T10:00:00Z",
            replicas=[
                {"index": 0, "state": "running", "start_time": "2026-01-01T10:00:00Z"},
                {
                    "index": 1,
                    "state": "succeeded",
                    "exit_code": 0,
                    "finish_time": "2026-01-01T10:05:00Z",
                    "output_file_ids": [FILE_1],
                    "outputs_collected": True,
                },
            ],
        ),
    )
    status = get_status(shared_platform, service_id)
    assert counts(status) == ("running", "running", 1, 1, 0, 2)
    assert list(status.output_files) == [FILE_1]
    assert [(r.index, r.state) for r in status.replicas] == [(0, "running"), (1, "succeeded")]
    assert status.updated_at.ToJsonString() == "2026-01-01T10:05:00Z"

    shared_platform.operator.write_status(
        service_id,
        status_dict(
            phase="succeeded",
            succeeded=2,
            total=2,
            replicas=[
                {"index": 0, "state": "succeeded", "output_file_ids": [FILE_0]},
                {"index": 1, "state": "succeeded", "output_file_ids": [FILE_1]},
            ],
            conditions=[{"type": "Complete", "status": "True", "reason": "AllSucceeded"}],
            message="2 of 2 replicas succeeded",
        ),
    )
    status = get_status(shared_platform, service_id)
    assert counts(status) == ("succeeded", "ok", 0, 2, 0, 2)
    assert list(status.output_files) == [FILE_0, FILE_1]
    assert status.message == "2 of 2 replicas succeeded"
    assert [c.type for c in status.conditions] == ["Complete"]

    service = (
        shared_platform.stub()
        .GetService(orchestrator_pb2.GetServiceRequest(id=service_id), timeout=CALL_TIMEOUT)
        .service
    )
    assert (service.phase, service.status, service.succeeded_runs, service.total_runs) == (
        "succeeded",
        "ok",
        2,
        2,
    )
    assert list(service.output_files) == [FILE_0, FILE_1]


def test_ondemand_with_a_failed_replica_is_error(shared_platform: Platform) -> None:
    service_id = shared_platform.launch(**LAUNCHES["ondemand"])
    shared_platform.operator.write_status(
        service_id,
        status_dict(
            phase="failed",
            succeeded=1,
            failed=1,
            total=2,
            replicas=[
                {"index": 0, "state": "failed", "exit_code": 137, "reason": "OOMKilled"},
                {"index": 1, "state": "succeeded"},
            ],
            message="replica 0 failed: OOMKilled",
        ),
    )
    status = get_status(shared_platform, service_id)
    assert counts(status) == ("failed", "error", 0, 1, 1, 2)
    assert status.replicas[0].reason == "OOMKilled"
    assert status.message == "replica 0 failed: OOMKilled"


def test_scheduled_between_runs_is_running_with_its_runs(shared_platform: Platform) -> None:
    service_id = shared_platform.launch(**LAUNCHES["scheduled"])
    shared_platform.operator.write_status(
        service_id,
        status_dict(
            phase="running",
            active=0,
            succeeded=3,
            failed=1,
            total=4,
            runs=[
                {"name": f"{service_id}-2", "state": "succeeded"},
                {"name": f"{service_id}-1", "state": "failed"},
            ],
            replicas=[
                {"index": 0, "state": "failed", "run": f"{service_id}-1"},
                {"index": 1, "state": "succeeded", "run": f"{service_id}-1"},
                {"index": 0, "state": "succeeded", "run": f"{service_id}-2"},
                {"index": 1, "state": "succeeded", "run": f"{service_id}-2"},
            ],
        ),
    )
    status = get_status(shared_platform, service_id)
    assert counts(status) == ("running", "running", 0, 3, 1, 4)
    assert [r.name for r in status.runs] == [f"{service_id}-2", f"{service_id}-1"]
    assert status.job_type == "scheduled"


@pytest.mark.parametrize(
    ("ready", "expected"), [("True", ("running", "ok")), ("False", ("running", "running"))]
)
def test_persistent_is_ok_while_running_and_ready(
    shared_platform: Platform, ready: str, expected: tuple[str, str]
) -> None:
    service_id = shared_platform.launch(**LAUNCHES["persistent"])
    shared_platform.operator.write_status(
        service_id,
        status_dict(
            phase="running",
            active=1,
            total=1,
            replicas=[{"index": 0, "state": "running"}],
            conditions=[{"type": "Ready", "status": ready}],
        ),
    )
    status = get_status(shared_platform, service_id)
    assert (status.phase, status.status) == expected
    assert status.active_runs == 1


def test_persistent_failed_is_error(shared_platform: Platform) -> None:
    service_id = shared_platform.launch(**LAUNCHES["persistent"])
    shared_platform.operator.write_status(
        service_id,
        status_dict(phase="failed", total=1, message="image pull failed: ImagePullBackOff"),
    )
    status = get_status(shared_platform, service_id)
    assert (status.phase, status.status) == ("failed", "error")
    assert "ImagePullBackOff" in status.message


@pytest.mark.parametrize("job_type", ["ondemand", "scheduled", "persistent"])
def test_a_resource_deleted_behind_our_back_answers_failed_not_an_error(
    shared_platform: Platform, job_type: str
) -> None:
    service_id = shared_platform.launch(**LAUNCHES[job_type])
    shared_platform.operator.delete_behind_our_back(service_id)
    status = get_status(shared_platform, service_id)
    assert (status.phase, status.status) == ("failed", "error")
    assert status.message.startswith("workload resource missing")
    listed = shared_platform.stub().ListServices(
        orchestrator_pb2.ListServicesRequest(limit=1000), timeout=CALL_TIMEOUT
    )
    assert {s.id: s.phase for s in listed.services}[service_id] == "failed"
