"""Every launch rule, through the real gRPC API: the right code, a message naming the field.

A refused launch writes nothing: no record, no Analytics resource.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2, orchestrator_pb2_grpc
from dtpoc_local.credentials import credentials
from dtpoc_local.databases import drop_databases
from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.orchestrator import start_orchestrator_server
from tests.orchestrator.helpers import CALL_TIMEOUT, Platform, launch_request

OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT

FILE_A = "0123456789abcdef01234567"

CASES: list[tuple[str, dict[str, Any], grpc.StatusCode, str]] = [
    # --- ana / sim --------------------------------------------------------------------------
    ("neither ana nor sim", {"ana": None}, INVALID, "ana: set exactly one of ana and sim"),
    (
        "both ana and sim",
        {"sim": {"settings": {}}},
        INVALID,
        "ana: set exactly one of ana and sim, not both",
    ),
    (
        "sim only",
        {"ana": None, "sim": {"settings": {}}},
        grpc.StatusCode.UNIMPLEMENTED,
        "simulation services (sim) are not implemented",
    ),
    # --- expose (the local backend never publishes a service) -------------------------------
    ("expose false is the default", {"expose": False}, OK, ""),
    (
        "expose an ondemand service",
        {"expose": True},
        INVALID,
        "expose: only a persistent service with a port serves anything to expose",
    ),
    (
        "expose a persistent service without a port",
        {"ana": {"job_type": "persistent"}, "expose": True},
        INVALID,
        "expose: only a persistent service with a port",
    ),
    (
        "expose where the platform publishes nothing",
        {"ana": {"job_type": "persistent"}, "port": 8080, "expose": True},
        INVALID,
        "expose: this platform does not publish analytics services outside the cluster",
    ),
    # --- job types --------------------------------------------------------------------------
    ("unknown job type", {"ana": {"job_type": "batch", "reps": 1}}, INVALID, "ana.job_type:"),
    # The original's samples: an ondemand service without reps runs one replica.
    ("ondemand without reps", {"ana": {"job_type": "ondemand"}}, OK, ""),
    (
        "ondemand reps 0",
        {"ana": {"job_type": "ondemand", "reps": 0}},
        INVALID,
        "ana.reps: must be between 1 and 100 for an ondemand service",
    ),
    (
        "ondemand reps 101",
        {"ana": {"job_type": "ondemand", "reps": 101}},
        INVALID,
        "ana.reps: must be between 1 and 100 for an ondemand service",
    ),
    ("ondemand reps 100", {"ana": {"job_type": "ondemand", "reps": 100}}, OK, ""),
    ("ondemand reps 1", {"ana": {"job_type": "ondemand", "reps": 1}}, OK, ""),
    (
        "ondemand with port",
        {"port": 8080},
        INVALID,
        "port: an ondemand service has no port",
    ),
    (
        "ondemand with schedule",
        {"ana": {"job_type": "ondemand", "reps": 1, "schedule": "*/5 * * * *"}},
        INVALID,
        "ana.schedule: an ondemand service has no schedule",
    ),
    (
        "ondemand with empty schedule",
        {"ana": {"job_type": "ondemand", "reps": 1, "schedule": ""}},
        OK,
        "",
    ),
    (
        "scheduled without reps",
        {"ana": {"job_type": "scheduled", "schedule": "*/5 * * * *"}},
        INVALID,
        "ana.reps: must be between 1 and 100 for a scheduled service",
    ),
    (
        "scheduled without schedule",
        {"ana": {"job_type": "scheduled", "reps": 1}},
        INVALID,
        "ana.schedule: required for a scheduled service",
    ),
    (
        "scheduled with six fields",
        {"ana": {"job_type": "scheduled", "reps": 1, "schedule": "0 */5 * * * *"}},
        INVALID,
        "ana.schedule: '0 */5 * * * *' has 6 fields; give five",
    ),
    (
        "scheduled with a macro",
        {"ana": {"job_type": "scheduled", "reps": 1, "schedule": "@daily"}},
        INVALID,
        "ana.schedule: '@daily' has 1 fields",
    ),
    (
        "scheduled with minute 60",
        {"ana": {"job_type": "scheduled", "reps": 1, "schedule": "60 * * * *"}},
        INVALID,
        "ana.schedule: '60 * * * *' is not a valid cron expression",
    ),
    (
        "scheduled with croniter-only L",
        {"ana": {"job_type": "scheduled", "reps": 1, "schedule": "0 0 L * *"}},
        INVALID,
        "uses characters Kubernetes cron does not accept",
    ),
    (
        "scheduled with names",
        {"ana": {"job_type": "scheduled", "reps": 3, "schedule": "30 6 * JAN-MAR MON-FRI"}},
        OK,
        "",
    ),
    (
        "scheduled with port",
        {"port": 8080, "ana": {"job_type": "scheduled", "reps": 1, "schedule": "* * * * *"}},
        INVALID,
        "port: a scheduled service has no port",
    ),
    (
        "persistent with reps",
        {"ana": {"job_type": "persistent", "reps": 1}},
        INVALID,
        "ana.reps: a persistent service has no reps",
    ),
    (
        "persistent with schedule",
        {"ana": {"job_type": "persistent", "schedule": "* * * * *"}},
        INVALID,
        "ana.schedule: a persistent service has no schedule",
    ),
    (
        "persistent port 1023",
        {"port": 1023, "ana": {"job_type": "persistent"}},
        INVALID,
        "port: must be between 1024 and 65535 for a persistent service",
    ),
    (
        "persistent port 65536",
        {"port": 65536, "ana": {"job_type": "persistent"}},
        INVALID,
        "port: must be between 1024 and 65535",
    ),
    ("persistent port 8080", {"port": 8080, "ana": {"job_type": "persistent"}}, OK, ""),
    ("persistent without port", {"ana": {"job_type": "persistent"}}, OK, ""),
    (
        "persistent with parallelism",
        {"ana": {"job_type": "persistent", "parallelism": 2}},
        INVALID,
        "ana.parallelism: only ondemand and scheduled services take this option",
    ),
    (
        "parallelism 0",
        {"ana": {"job_type": "ondemand", "reps": 2, "parallelism": 0}},
        INVALID,
        "ana.parallelism: must be between 1 and 100",
    ),
    (
        "backoff limit 11",
        {"ana": {"job_type": "ondemand", "reps": 2, "backoff_limit_per_index": 11}},
        INVALID,
        "ana.backoff_limit_per_index: must be between 0 and 10",
    ),
    (
        "deadline 0",
        {"ana": {"job_type": "ondemand", "reps": 2, "active_deadline_seconds": 0}},
        INVALID,
        "ana.active_deadline_seconds: must be at least 1",
    ),
    (
        "negative ttl",
        {"ana": {"job_type": "ondemand", "reps": 2, "ttl_seconds_after_finished": -1}},
        INVALID,
        "ana.ttl_seconds_after_finished: must be at least 0",
    ),
    (
        "every job option",
        {
            "ana": {
                "job_type": "ondemand",
                "reps": 4,
                "parallelism": 2,
                "backoff_limit_per_index": 1,
                "active_deadline_seconds": 3600,
                "ttl_seconds_after_finished": 60,
            }
        },
        OK,
        "",
    ),
    # --- image and version ------------------------------------------------------------------
    ("empty image", {"image": ""}, INVALID, "image: required"),
    ("image with tag", {"image": "ghcr.io/example/sim:1.0"}, INVALID, "give the tag in version"),
    ("image with digest", {"image": "busybox@sha256:" + "a" * 64}, INVALID, "image: digests"),
    ("upper-case image path", {"image": "ghcr.io/Example/sim"}, INVALID, "lower case"),
    ("image with space", {"image": "ghcr.io/example/my sim"}, INVALID, "image:"),
    ("image with double slash", {"image": "ghcr.io//sim"}, INVALID, "image:"),
    ("registry with port", {"image": "localhost:5000/team/sim"}, OK, ""),
    ("docker hub short name", {"image": "busybox"}, OK, ""),
    ("separators", {"image": "registry.example.org/a_b/c__d/e---f.g"}, OK, ""),
    ("bad version", {"version": "-rc1"}, INVALID, "version: '-rc1' is not a valid image tag"),
    ("version with colon", {"version": "1:2"}, INVALID, "version:"),
    ("version too long", {"version": "v" * 129}, INVALID, "version:"),
    ("version 128 chars", {"version": "v" * 128}, OK, ""),
    ("empty version means latest", {"version": ""}, OK, ""),
    ("description too long", {"description": "x" * 4097}, INVALID, "description:"),
    # --- env --------------------------------------------------------------------------------
    ("env name with dash", {"env": {"MY-VAR": "1"}}, INVALID, "env: 'MY-VAR' is not a valid"),
    ("env name with digit first", {"env": {"1VAR": "1"}}, INVALID, "env: '1VAR'"),
    ("env empty name", {"env": {"": "1"}}, INVALID, "env: '' is not a valid"),
    ("env RUN_ID", {"env": {"RUN_ID": "x"}}, INVALID, "env: 'RUN_ID' is set by the platform"),
    ("env REPLICA_INDEX", {"env": {"REPLICA_INDEX": "0"}}, INVALID, "env: 'REPLICA_INDEX'"),
    ("env DTPOC_ prefix", {"env": {"DTPOC_X": "0"}}, INVALID, "env: 'DTPOC_X' is set by"),
    ("env fine", {"env": {"_lower_ok1": "x", "SIM_HOURS": "1176"}}, OK, ""),
    # --- mount files (syntax; existence in test_launch) -------------------------------------
    ("mount id too short", {"mount_files": {"abc": "in.xlsx"}}, INVALID, "mount_files: 'abc'"),
    (
        "mount id upper case",
        {"mount_files": {FILE_A.upper(): "in.xlsx"}},
        INVALID,
        "mount_files:",
    ),
    ("mount name empty", {"mount_files": {FILE_A: ""}}, INVALID, "is empty"),
    ("mount name ..", {"mount_files": {FILE_A: ".."}}, INVALID, "is not a file name"),
    ("mount name .", {"mount_files": {FILE_A: "."}}, INVALID, "is not a file name"),
    ("mount name absolute", {"mount_files": {FILE_A: "/etc/passwd"}}, INVALID, "path separator"),
    ("mount name nested", {"mount_files": {FILE_A: "a/b.xlsx"}}, INVALID, "path separator"),
    ("mount name traversal", {"mount_files": {FILE_A: "../x"}}, INVALID, "path separator"),
    ("mount name backslash", {"mount_files": {FILE_A: "a\\b"}}, INVALID, "path separator"),
    ("mount name NUL", {"mount_files": {FILE_A: "a\x00b"}}, INVALID, "NUL"),
    # 240: the fetcher's temporary name (".<name>.part-<8 hex>") must fit NAME_MAX too.
    ("mount name 241 bytes", {"mount_files": {FILE_A: "a" * 241}}, INVALID, "240 bytes"),
    ("mount name colon", {"mount_files": {FILE_A: "a:b"}}, INVALID, "characters other than"),
    (
        "duplicate mount names",
        {"mount_files": {FILE_A: "in.xlsx", "0123456789abcdef01234568": "in.xlsx"}},
        INVALID,
        "are both mounted as 'in.xlsx'",
    ),
    # --- labels and resources ---------------------------------------------------------------
    ("bad label key", {"labels": {"bad key": "x"}}, INVALID, "labels:"),
    ("platform label", {"labels": {"dtpoc.eng.cam.ac.uk/x": "y"}}, INVALID, "labels:"),
    ("bad label value", {"labels": {"team": "a b"}}, INVALID, "labels:"),
    ("good labels", {"labels": {"app.kubernetes.io/part-of": "lab", "team": "x_1"}}, OK, ""),
    (
        "bad quantity",
        {"resources": {"limits": {"memory": "lots"}}},
        INVALID,
        "resources.limits: 'lots' (memory) is not a quantity",
    ),
    (
        "bad resource name",
        {"resources": {"requests": {"c p u": "1"}}},
        INVALID,
        "resources.requests:",
    ),
    (
        "good resources",
        {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2"}}},
        OK,
        "",
    ),
]


def _launch(platform: Platform, fields: dict[str, Any]) -> tuple[grpc.StatusCode, str, str]:
    request = launch_request(backend=platform.backend, **fields)
    try:
        response = platform.stub().LaunchService(request, timeout=CALL_TIMEOUT)
    except grpc.RpcError as error:
        return error.code(), error.details() or "", ""
    return OK, "", str(response.id)


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [pytest.param(f, c, m, id=name) for name, f, c, m in CASES],
)
def test_launch_rule(
    local_platform: Platform, fields: dict[str, Any], code: grpc.StatusCode, message: str
) -> None:
    records_before = local_platform.records().count_documents({})
    got_code, details, service_id = _launch(local_platform, fields)
    assert got_code == code, details
    assert message in details
    if code == OK:
        assert len(service_id) == 24
        return
    # Nothing was written for a refused launch.
    assert local_platform.records().count_documents({}) == records_before


def test_a_refused_launch_writes_no_resource(local_platform: Platform) -> None:
    names_before = local_platform.operator.resource_names()
    code, _, _ = _launch(local_platform, {"ana": {"job_type": "ondemand", "reps": 0}})
    assert code == INVALID
    assert local_platform.operator.resource_names() == names_before


def test_the_local_backend_without_containers_needs_a_command(local_platform: Platform) -> None:
    request = launch_request(backend="kubernetes")  # no command
    with pytest.raises(grpc.RpcError) as raised:
        local_platform.stub().LaunchService(request, timeout=CALL_TIMEOUT)
    assert raised.value.code() == INVALID
    message = raised.value.details() or ""
    assert message.startswith("command: required by the local backend")
    # ... and says how to run the image instead
    assert "DTPOC_ORCHESTRATOR_LOCAL_CONTAINERS=true" in message
    assert "DTPOC_OPERATOR_LOCAL_CONTAINER_ENGINE" in message


def test_the_local_backend_with_containers_takes_the_originals_body(
    mongodb_uri: str, module_files: FilesServer, tmp_path: Path
) -> None:
    server = start_orchestrator_server(
        mongodb_uri=mongodb_uri,
        workdir=tmp_path,
        files_address=module_files.address,
        backend="local",
        env_overrides={"DTPOC_ORCHESTRATOR_LOCAL_CONTAINERS": "true"},
    )
    try:
        with credentials().channel(server.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
            request = launch_request(
                backend="kubernetes",  # the original's body: image and version, no command
                image="ghcr.io/cam-digital-hospitals/digital-hosp-des",
                version="latest",
            )
            answer = stub.LaunchService(request, timeout=CALL_TIMEOUT)
            assert answer.id
            stored = stub.GetService(
                orchestrator_pb2.GetServiceRequest(id=answer.id), timeout=CALL_TIMEOUT
            )
            assert (stored.service.image, stored.service.version) == (
                "ghcr.io/cam-digital-hospitals/digital-hosp-des",
                "latest",
            )
    finally:
        server.stop()
        drop_databases(mongodb_uri, {server.database})


def test_empty_version_becomes_latest(local_platform: Platform) -> None:
    _, _, service_id = _launch(local_platform, {"version": ""})
    service = local_platform.stub().GetService(
        orchestrator_pb2.GetServiceRequest(id=service_id), timeout=CALL_TIMEOUT
    )
    assert service.service.version == "latest"
    resource = local_platform.operator.resource(service_id)
    assert resource is not None
    assert resource["spec"]["version"] == "latest"


@pytest.mark.parametrize("bad_id", ["", "xyz", "0123456789abcdef0123456", "g" * 24])
def test_malformed_ids_are_invalid_argument(local_platform: Platform, bad_id: str) -> None:
    stub = local_platform.stub()
    calls = [
        lambda: stub.GetService(orchestrator_pb2.GetServiceRequest(id=bad_id), timeout=5),
        lambda: stub.GetServiceStatus(
            orchestrator_pb2.GetServiceStatusRequest(id=bad_id), timeout=5
        ),
        lambda: stub.GetServiceOutput(
            orchestrator_pb2.GetServiceOutputRequest(id=bad_id, idx=0), timeout=5
        ),
        lambda: stub.ListServiceOutputs(
            orchestrator_pb2.ListServiceOutputsRequest(id=bad_id), timeout=5
        ),
        lambda: stub.TerminateService(
            orchestrator_pb2.TerminateServiceRequest(id=bad_id), timeout=5
        ),
        lambda: list(stub.WatchService(orchestrator_pb2.WatchServiceRequest(id=bad_id), timeout=5)),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() == INVALID
        assert (raised.value.details() or "").startswith("id: must be 24 hexadecimal digits")


def test_unknown_ids_are_not_found(local_platform: Platform) -> None:
    stub = local_platform.stub()
    unknown = "0" * 24
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetServiceStatus(orchestrator_pb2.GetServiceStatusRequest(id=unknown), timeout=5)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert unknown in (raised.value.details() or "")
    with pytest.raises(grpc.RpcError) as raised:
        stub.TerminateService(orchestrator_pb2.TerminateServiceRequest(id=unknown), timeout=5)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
