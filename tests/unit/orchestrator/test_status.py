"""Status answers for all three job types, derived from what the operator wrote.

The fake store's operator part writes the Analytics status as the operator would;
the assertions are on what a client of GetServiceStatus sees (the servicer, called
in-process). That the real stores carry the same status is their contract test's
(``tests/orchestrator/test_store_contract.py``); one walk through a real server per
backend stays in ``tests/orchestrator/test_status.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from tests.orchestrator.messages import counts, status_dict
from tests.unit.orchestrator.helpers import Api

FILE_0 = "0123456789abcdef0123456a"
FILE_1 = "0123456789abcdef0123456b"


LAUNCHES: dict[str, dict[str, Any]] = {
    "ondemand": {"ana": {"job_type": "ondemand", "reps": 2}},
    "scheduled": {"ana": {"job_type": "scheduled", "reps": 2, "schedule": "*/10 * * * *"}},
    "persistent": {"port": 8080, "ana": {"job_type": "persistent"}},
}


@pytest.mark.parametrize(
    ("job_type", "total"), [("ondemand", 2), ("scheduled", 0), ("persistent", 1)]
)
async def test_before_the_operator_looks_the_service_is_pending(
    api: Api, job_type: str, total: int
) -> None:
    service_id = await api.launch(**LAUNCHES[job_type])
    status = await api.status(service_id)
    assert counts(status) == ("pending", "running", 0, 0, 0, total)
    assert status.job_type == job_type
    assert list(status.output_files) == []


async def test_ondemand_running_then_succeeded(api: Api) -> None:
    service_id = await api.launch(**LAUNCHES["ondemand"])
    api.store.write_status(
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
    status = await api.status(service_id)
    assert counts(status) == ("running", "running", 1, 1, 0, 2)
    assert list(status.output_files) == [FILE_1]
    assert [(r.index, r.state) for r in status.replicas] == [(0, "running"), (1, "succeeded")]
    assert status.updated_at.ToJsonString() == "2026-01-01T10:05:00Z"

    api.store.write_status(
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
    status = await api.status(service_id)
    assert counts(status) == ("succeeded", "ok", 0, 2, 0, 2)
    assert list(status.output_files) == [FILE_0, FILE_1]
    assert status.message == "2 of 2 replicas succeeded"
    assert [c.type for c in status.conditions] == ["Complete"]

    service = (
        await api.edge.GetService(orchestrator_pb2.GetServiceRequest(id=service_id), None)
    ).service
    assert (service.phase, service.status, service.succeeded_runs, service.total_runs) == (
        "succeeded",
        "ok",
        2,
        2,
    )
    assert list(service.output_files) == [FILE_0, FILE_1]


async def test_ondemand_with_a_failed_replica_is_error(api: Api) -> None:
    service_id = await api.launch(**LAUNCHES["ondemand"])
    api.store.write_status(
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
    status = await api.status(service_id)
    assert counts(status) == ("failed", "error", 0, 1, 1, 2)
    assert status.replicas[0].reason == "OOMKilled"
    assert status.message == "replica 0 failed: OOMKilled"


async def test_scheduled_between_runs_is_running_with_its_runs(api: Api) -> None:
    service_id = await api.launch(**LAUNCHES["scheduled"])
    api.store.write_status(
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
    status = await api.status(service_id)
    assert counts(status) == ("running", "running", 0, 3, 1, 4)
    assert [r.name for r in status.runs] == [f"{service_id}-2", f"{service_id}-1"]
    assert status.job_type == "scheduled"


@pytest.mark.parametrize(
    ("ready", "expected"), [("True", ("running", "ok")), ("False", ("running", "running"))]
)
async def test_persistent_is_ok_while_running_and_ready(
    api: Api, ready: str, expected: tuple[str, str]
) -> None:
    service_id = await api.launch(**LAUNCHES["persistent"])
    api.store.write_status(
        service_id,
        status_dict(
            phase="running",
            active=1,
            total=1,
            replicas=[{"index": 0, "state": "running"}],
            conditions=[{"type": "Ready", "status": ready}],
        ),
    )
    status = await api.status(service_id)
    assert (status.phase, status.status) == expected
    assert status.active_runs == 1


async def test_persistent_failed_is_error(api: Api) -> None:
    service_id = await api.launch(**LAUNCHES["persistent"])
    api.store.write_status(
        service_id,
        status_dict(phase="failed", total=1, message="image pull failed: ImagePullBackOff"),
    )
    status = await api.status(service_id)
    assert (status.phase, status.status) == ("failed", "error")
    assert "ImagePullBackOff" in status.message


@pytest.mark.parametrize("job_type", ["ondemand", "scheduled", "persistent"])
async def test_a_resource_deleted_behind_our_back_answers_failed_not_an_error(
    api: Api, job_type: str
) -> None:
    service_id = await api.launch(**LAUNCHES[job_type])
    api.store.delete_behind_our_back(service_id)
    status = await api.status(service_id)
    assert (status.phase, status.status) == ("failed", "error")
    assert status.message.startswith("workload resource missing")
    listed = await api.edge.ListServices(orchestrator_pb2.ListServicesRequest(limit=1000), None)
    assert {s.id: s.phase for s in listed.services}[service_id] == "failed"
