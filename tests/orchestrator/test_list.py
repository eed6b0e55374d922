"""ListServices: paging rules of the original, newest first, filter by phase or status."""

from __future__ import annotations

import grpc
import pytest

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from tests.orchestrator.helpers import CALL_TIMEOUT, Platform, status_dict


def list_ids(platform: Platform, **fields: object) -> list[str]:
    answer = platform.stub().ListServices(
        orchestrator_pb2.ListServicesRequest(**fields),  # type: ignore[arg-type]
        timeout=CALL_TIMEOUT,
    )
    return [s.id for s in answer.services]


def test_paging_newest_first_and_filters(platform: Platform) -> None:
    launched = [platform.launch(ana={"job_type": "ondemand", "reps": 1}) for _ in range(12)]
    newest_first = list(reversed(launched))

    assert list_ids(platform) == newest_first[:10]  # no limit means 10
    assert list_ids(platform, limit=1000) == newest_first
    assert list_ids(platform, skip=10, limit=5) == newest_first[10:]
    assert list_ids(platform, skip=3, limit=2) == newest_first[3:5]
    assert list_ids(platform, skip=50) == []

    platform.operator.write_status(
        launched[0], status_dict(phase="succeeded", succeeded=1, total=1)
    )
    platform.operator.write_status(launched[1], status_dict(phase="failed", failed=1, total=1))
    platform.operator.write_status(launched[2], status_dict(phase="running", active=1, total=1))
    platform.stub().TerminateService(
        orchestrator_pb2.TerminateServiceRequest(id=launched[3]), timeout=CALL_TIMEOUT
    )

    assert list_ids(platform, status="succeeded") == [launched[0]]
    assert list_ids(platform, status="ok") == [launched[0]]
    assert list_ids(platform, status="failed") == [launched[1]]
    assert list_ids(platform, status="terminated") == [launched[3]]
    assert set(list_ids(platform, status="error")) == {launched[1], launched[3]}
    pending = [i for i in newest_first if i not in launched[:4]]
    assert list_ids(platform, status="pending", limit=1000) == pending
    # "running" is both a phase and a status: the running one and every pending one.
    running = [i for i in newest_first if i in pending or i == launched[2]]
    assert list_ids(platform, status="running", limit=1000) == running
    assert list_ids(platform, status="pending", skip=2, limit=3) == pending[2:5]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"skip": -1}, "skip: must be >= 0, got -1"),
        ({"limit": -1}, "limit: must be between 1 and 1000, got -1"),
        ({"limit": 0}, "limit: must be between 1 and 1000, got 0"),
        ({"limit": 1001}, "limit: must be between 1 and 1000, got 1001"),
        ({"status": "done"}, "status: must be one of"),
    ],
)
def test_bad_paging_is_invalid_argument(
    local_platform: Platform, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        list_ids(local_platform, **fields)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (raised.value.details() or "").startswith(message)
