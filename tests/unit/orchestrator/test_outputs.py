"""``output/{idx}`` answers replica idx's output, whatever order replicas finish in.

Output files are stored in the Files fake the way the operator's output collector
stores them (metadata ``service_id``, ``replica_index``, ``path``); the store fake's
operator part records their ids in the replica status. The calls go through the
servicer in-process (``InProcessPlatform``); the Files client's side of this is the
Files port's contract (``tests/orchestrator/test_files_contract.py``).
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from tests.orchestrator.messages import status_dict, value_to_python
from tests.unit.orchestrator.helpers import InProcessPlatform as Platform

CALL_TIMEOUT = 5.0


def get_output(platform: Platform, service_id: str, idx: int) -> Any:
    return platform.stub().GetServiceOutput(
        orchestrator_pb2.GetServiceOutputRequest(id=service_id, idx=idx), timeout=CALL_TIMEOUT
    )


def output_error(platform: Platform, service_id: str, idx: int) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        get_output(platform, service_id, idx)
    return raised.value


def kpis(replica: int, service_id: str) -> bytes:
    """A replica's KPI document. The Files service deduplicates by content, so the
    content names the service: identical bytes would keep an earlier file's metadata."""
    document = {"replica": replica, "tat_hours": 40.5 + replica, "service": service_id}
    return json.dumps(document).encode()


def test_output_idx_is_replica_idx_even_when_replica_1_finishes_first(
    platform: Platform,
) -> None:
    service_id = platform.launch(ana={"job_type": "ondemand", "reps": 2})
    file_1 = platform.upload_output(service_id, 1, "kpis.json", kpis(1, service_id))
    platform.operator.write_status(
        service_id,
        status_dict(
            phase="running",
            active=1,
            succeeded=1,
            total=2,
            # Replica 1 finished first, so it is listed first: a positional pick would be wrong.
            replicas=[
                {
                    "index": 1,
                    "state": "succeeded",
                    "output_file_ids": [file_1],
                    "outputs_collected": True,
                },
                {"index": 0, "state": "running"},
            ],
        ),
    )
    answer = get_output(platform, service_id, 1)
    assert value_to_python(answer.output) == {
        "replica": 1,
        "tat_hours": 41.5,
        "service": service_id,
    }
    assert answer.idx == 1
    assert [(f.file_id, f.path, f.replica_index) for f in answer.files] == [
        (file_1, "kpis.json", 1)
    ]

    error = output_error(platform, service_id, 0)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "replica 0 has not finished (state running)"

    error = output_error(platform, service_id, 2)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "no such replica: 2 (the service has 2 replicas, indexes 0..1)"

    file_0 = platform.upload_output(service_id, 0, "kpis.json", kpis(0, service_id))
    platform.operator.write_status(
        service_id,
        status_dict(
            phase="succeeded",
            succeeded=2,
            total=2,
            replicas=[
                {"index": 1, "state": "succeeded", "output_file_ids": [file_1]},
                {"index": 0, "state": "succeeded", "output_file_ids": [file_0]},
            ],
        ),
    )
    assert value_to_python(get_output(platform, service_id, 0).output) == {
        "replica": 0,
        "tat_hours": 40.5,
        "service": service_id,
    }
    assert value_to_python(get_output(platform, service_id, 1).output)["replica"] == 1


def test_a_replica_that_has_not_started_is_pending(platform: Platform) -> None:
    service_id = platform.launch(ana={"job_type": "ondemand", "reps": 3})
    error = output_error(platform, service_id, 2)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "replica 2 has not finished (state pending)"


def test_negative_idx_is_invalid(platform: Platform) -> None:
    service_id = platform.launch()
    error = output_error(platform, service_id, -1)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith("idx:")


def test_several_files_answer_the_file_list(platform: Platform) -> None:
    service_id = platform.launch(ana={"job_type": "ondemand", "reps": 1})
    csv = f"service,q\n{service_id},1\n".encode()
    files = [
        platform.upload_output(service_id, 0, "kpis.json", kpis(0, service_id)),
        platform.upload_output(service_id, 0, "plots/queue.csv", csv),
    ]
    platform.operator.write_status(
        service_id,
        status_dict(
            phase="succeeded",
            succeeded=1,
            total=1,
            replicas=[{"index": 0, "state": "succeeded", "output_file_ids": files}],
        ),
    )
    answer = get_output(platform, service_id, 0)
    assert value_to_python(answer.output) == [
        {"file_id": files[0], "path": "kpis.json", "length": len(kpis(0, service_id))},
        {"file_id": files[1], "path": "plots/queue.csv", "length": len(csv)},
    ]


def test_one_file_that_is_not_json_answers_the_file_list(platform: Platform) -> None:
    service_id = platform.launch(ana={"job_type": "ondemand", "reps": 1})
    content = f"{{not json {service_id}".encode()
    broken = platform.upload_output(service_id, 0, "result.json", content)
    platform.operator.write_status(
        service_id,
        status_dict(
            phase="succeeded",
            succeeded=1,
            total=1,
            replicas=[{"index": 0, "state": "succeeded", "output_file_ids": [broken]}],
        ),
    )
    assert value_to_python(get_output(platform, service_id, 0).output) == [
        {"file_id": broken, "path": "result.json", "length": len(content)}
    ]


def test_outputs_are_found_in_files_when_the_status_lists_no_ids(
    platform: Platform,
) -> None:
    service_id = platform.launch(ana={"job_type": "ondemand", "reps": 2})
    platform.upload_output(service_id, 0, "kpis.json", kpis(0, service_id))
    platform.upload_output(service_id, 1, "kpis.json", kpis(1, service_id))
    platform.operator.write_status(
        service_id,
        status_dict(
            phase="succeeded",
            succeeded=2,
            total=2,
            replicas=[
                {"index": 0, "state": "succeeded", "outputs_collected": True},
                {"index": 1, "state": "succeeded", "outputs_collected": True},
            ],
        ),
    )
    assert value_to_python(get_output(platform, service_id, 1).output)["replica"] == 1
    assert value_to_python(get_output(platform, service_id, 0).output)["replica"] == 0


def test_finished_but_not_collected_says_so(platform: Platform) -> None:
    service_id = platform.launch(ana={"job_type": "ondemand", "reps": 1})
    platform.operator.write_status(
        service_id,
        status_dict(
            phase="running",
            succeeded=1,
            total=1,
            replicas=[{"index": 0, "state": "succeeded", "outputs_collected": False}],
        ),
    )
    error = output_error(platform, service_id, 0)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == (
        "replica 0 has finished (state succeeded) but its outputs are not collected yet"
    )


def test_a_failed_replica_answers_what_it_wrote(platform: Platform) -> None:
    service_id = platform.launch(ana={"job_type": "ondemand", "reps": 1})
    content = f"Traceback ... {service_id}\n".encode()
    log_file = platform.upload_output(service_id, 0, "error.log", content)
    platform.operator.write_status(
        service_id,
        status_dict(
            phase="failed",
            failed=1,
            total=1,
            replicas=[
                {
                    "index": 0,
                    "state": "failed",
                    "exit_code": 1,
                    "output_file_ids": [log_file],
                    "outputs_collected": True,
                }
            ],
        ),
    )
    assert value_to_python(get_output(platform, service_id, 0).output) == [
        {"file_id": log_file, "path": "error.log", "length": len(content)}
    ]


def test_scheduled_output_is_the_newest_runs(platform: Platform) -> None:
    service_id = platform.launch(ana={"job_type": "scheduled", "reps": 1, "schedule": "0 * * * *"})
    old = platform.upload_output(
        service_id, 0, "kpis.json", json.dumps({"run": "old", "service": service_id}).encode()
    )
    new = platform.upload_output(
        service_id, 0, "kpis.json", json.dumps({"run": "new", "service": service_id}).encode()
    )
    platform.operator.write_status(
        service_id,
        status_dict(
            phase="running",
            succeeded=2,
            total=2,
            runs=[
                {"name": f"{service_id}-200", "state": "succeeded"},
                {"name": f"{service_id}-100", "state": "succeeded"},
            ],
            # Ordered by run then index, oldest run first.
            replicas=[
                {
                    "index": 0,
                    "state": "succeeded",
                    "run": f"{service_id}-100",
                    "output_file_ids": [old],
                },
                {
                    "index": 0,
                    "state": "succeeded",
                    "run": f"{service_id}-200",
                    "output_file_ids": [new],
                },
            ],
        ),
    )
    assert value_to_python(get_output(platform, service_id, 0).output) == {
        "run": "new",
        "service": service_id,
    }
    error = output_error(platform, service_id, 1)
    assert error.details() == "no such replica: 1 (the service has 1 replica, index 0)"


def test_list_service_outputs_has_one_entry_per_replica(platform: Platform) -> None:
    service_id = platform.launch(ana={"job_type": "ondemand", "reps": 3})
    file_2 = platform.upload_output(service_id, 2, "kpis.json", kpis(2, service_id))
    platform.operator.write_status(
        service_id,
        status_dict(
            phase="running",
            active=1,
            succeeded=1,
            total=3,
            replicas=[
                {"index": 2, "state": "succeeded", "output_file_ids": [file_2]},
                {"index": 0, "state": "running"},
            ],
        ),
    )
    answer = platform.stub().ListServiceOutputs(
        orchestrator_pb2.ListServiceOutputsRequest(id=service_id), timeout=CALL_TIMEOUT
    )
    assert [(r.idx, r.state, [f.file_id for f in r.files]) for r in answer.replicas] == [
        (0, "running", []),
        (1, "pending", []),
        (2, "succeeded", [file_2]),
    ]
