"""A status walk through a real orchestrator on each backend: what the operator double
writes (the status subresource in Kubernetes, the local document) is what a client of
GetServiceStatus / GetService sees. The status rules of all three job types are the unit
tier's (``tests/unit/orchestrator/test_status.py``).
"""

from __future__ import annotations

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from tests.orchestrator.helpers import CALL_TIMEOUT, Platform, status_dict
from tests.orchestrator.messages import counts

FILE_0 = "0123456789abcdef0123456a"
FILE_1 = "0123456789abcdef0123456b"


def get_status(platform: Platform, service_id: str) -> orchestrator_pb2.ServiceStatus:
    response = platform.stub().GetServiceStatus(
        orchestrator_pb2.GetServiceStatusRequest(id=service_id), timeout=CALL_TIMEOUT
    )
    return response.status


def test_the_status_the_operator_writes_is_what_clients_see(shared_platform: Platform) -> None:
    service_id = shared_platform.launch(ana={"job_type": "ondemand", "reps": 2})
    assert counts(get_status(shared_platform, service_id)) == ("pending", "running", 0, 0, 0, 2)
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
            message="2 of 2 replicas succeeded",
        ),
    )
    status = get_status(shared_platform, service_id)
    assert counts(status) == ("succeeded", "ok", 0, 2, 0, 2)
    assert list(status.output_files) == [FILE_0, FILE_1]
    assert status.message == "2 of 2 replicas succeeded"
    service = (
        shared_platform.stub()
        .GetService(orchestrator_pb2.GetServiceRequest(id=service_id), timeout=CALL_TIMEOUT)
        .service
    )
    assert (service.phase, service.succeeded_runs, service.total_runs) == ("succeeded", 2, 2)
