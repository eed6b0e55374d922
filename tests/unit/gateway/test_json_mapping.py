"""Proto JSON as the original clients read it, through the orchestrator paths.

Against the orchestrator test double: what the double receives shows the
request transcoding, what the client reads shows the answer's.
"""

from __future__ import annotations

import httpx

from tests.gateway import doubles
from tests.gateway.helpers import PREFIX

LAUNCH = {
    "image": "ghcr.io/cam-digital-hospitals/digital-hosp-des",
    "version": "latest",
    "description": "Histopathology lab simulation reporting KPIs",
    "port": None,
    "env": {"INPUT_EXCEL_FILE": "/input/input.xlsx", "SIM_HOURS": "1176", "NUM_REPS": "2"},
    "mount_files": {"669a4eee364a1b751c550b02": "input.xlsx"},
    "ana": {"job_type": "ondemand", "reps": 2, "schedule": None},
    "sim": None,
}


def test_launch_answers_202_with_the_id_and_transcodes_the_body(
    api: httpx.Client, orchestrator_double: tuple[doubles.OrchestratorDouble, str]
) -> None:
    double, _ = orchestrator_double
    answer = api.post(f"{PREFIX}/service/launch", json=LAUNCH)
    assert answer.status_code == 202, answer.text
    service_id = answer.json()["id"]
    assert answer.json() == {"id": service_id} and len(service_id) == 24

    name, request = double.received[-1]
    assert name == "LaunchService"
    assert request.image == LAUNCH["image"]
    assert dict(request.env) == LAUNCH["env"]
    assert dict(request.mount_files) == LAUNCH["mount_files"]
    assert request.ana.job_type == "ondemand" and request.ana.reps == 2
    assert not request.ana.HasField("schedule")
    assert not request.HasField("port") and not request.HasField("sim")


def test_camel_case_names_are_accepted_on_input(
    api: httpx.Client, orchestrator_double: tuple[doubles.OrchestratorDouble, str]
) -> None:
    double, _ = orchestrator_double
    answer = api.post(
        f"{PREFIX}/service/launch",
        json={"image": "img", "mountFiles": {"a" * 24: "x.csv"}, "ana": {"jobType": "ondemand"}},
    )
    assert answer.status_code == 202
    request = double.received[-1][1]
    assert dict(request.mount_files) == {"a" * 24: "x.csv"}


def test_status_prints_zero_counts_with_snake_case_names(
    api: httpx.Client, orchestrator_double: tuple[doubles.OrchestratorDouble, str]
) -> None:
    double, _ = orchestrator_double
    service = double.add_service(image="img", reps=2, total_runs=2, status="running")
    answer = api.get(f"{PREFIX}/service/{service.id}/status")
    assert answer.status_code == 200
    status = answer.json()
    assert status["active_runs"] == 0
    assert status["succeeded_runs"] == 0 and status["failed_runs"] == 0
    assert status["total_runs"] == 2 and status["status"] == "running"
    assert status["output_files"] == []
    assert status["replicas"][0] == {
        "index": 0,
        "state": "pending",
        "reason": "",
        "message": "",
        "output_file_ids": [],
        "run": "",
        "pod_name": "",
        "outputs_collected": False,
        "attempt": 0,
        "logs": [],
    }
    assert "activeRuns" not in status


def test_list_is_a_bare_array_for_both_spellings(
    api: httpx.Client, orchestrator_double: tuple[doubles.OrchestratorDouble, str]
) -> None:
    double, _ = orchestrator_double
    double.add_service(image="listed", reps=1)
    for path in ("/service/", "/service"):
        answer = api.get(f"{PREFIX}{path}", params={"skip": 0, "limit": 1000})
        assert answer.status_code == 200
        records = answer.json()
        assert isinstance(records, list)
        record = next(r for r in records if r["image"] == "listed")
        assert record["reps"] == 1 and record["active_runs"] == 0
        assert record["mount_files"] == {} and record["output_files"] == []
        assert {"id", "version", "description", "created_at"} <= set(record)
    api.get(f"{PREFIX}/service/", params={"skip": 1, "limit": 2})
    name, request = double.received[-1]
    assert name == "ListServices" and request.skip == 1 and request.limit == 2


def test_64_bit_integers_are_numbers_when_exact(
    api: httpx.Client, orchestrator_double: tuple[doubles.OrchestratorDouble, str]
) -> None:
    double, _ = orchestrator_double
    service = double.add_service(image="img", reps=1)
    answer = api.get(f"{PREFIX}/service/{service.id}/outputs")
    assert answer.status_code == 200
    files = answer.json()["replicas"][0]["files"]
    lengths = {f["path"]: f["length"] for f in files}
    assert lengths["out.json"] == doubles.BIG_LENGTH  # > 2^32, a JSON number
    assert lengths["empty.txt"] == 0  # zero printed, as a number
    # Above 2^53 a double would round it: proto JSON's quoted form is kept.
    assert lengths["huge.bin"] == str(doubles.UNSAFE_LENGTH)


def test_output_is_the_replica_document_itself(
    api: httpx.Client, orchestrator_double: tuple[doubles.OrchestratorDouble, str]
) -> None:
    double, _ = orchestrator_double
    service = double.add_service(image="img", reps=2)
    answer = api.get(f"{PREFIX}/service/{service.id}/output/1")
    assert answer.status_code == 200
    assert answer.json() == {"replica": 1, "kpi": {"tat_hours": 12.5}}
    assert '"replica":1,' in answer.text or '"replica":1}' in answer.text  # an int, not 1.0
    request = double.received[-1][1]
    assert request.idx == 1


def test_terminate_and_healthz(
    api: httpx.Client, orchestrator_double: tuple[doubles.OrchestratorDouble, str]
) -> None:
    double, _ = orchestrator_double
    service = double.add_service(image="img", reps=1)
    answer = api.delete(f"{PREFIX}/service/{service.id}/terminate")
    assert answer.status_code == 200
    assert answer.json()["message"] == f"service {service.id} terminated"
    assert answer.json()["service"]["phase"] == "terminated"
    for path in (f"{PREFIX}/healthz", "/healthz"):
        health = api.get(path)
        assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_prefixless_routes_answer_the_same(
    api: httpx.Client, orchestrator_double: tuple[doubles.OrchestratorDouble, str]
) -> None:
    double, _ = orchestrator_double
    service = double.add_service(image="img", reps=2, total_runs=2)
    with_prefix = api.get(f"{PREFIX}/service/{service.id}/status")
    without = api.get(f"/service/{service.id}/status")
    assert without.status_code == 200 and without.json() == with_prefix.json()
    launched = api.post("/service/launch", json={"image": "bare", "ana": {"job_type": "ondemand"}})
    assert launched.status_code == 202
