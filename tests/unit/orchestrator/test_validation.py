"""Every launch rule, at the use-case level on the fakes: the right code, a message naming
the field, and nothing written (no record, no Analytics resource) for a refused launch.

The request goes through the servicer's translation (``servicer.launch_request``)
as over gRPC; ``code`` and :func:`errors.describe` are what the interceptor answers
with (that mapping, over a real server, is in ``tests/orchestrator/test_refusals.py``).
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_common import errors
from dtpoc_orchestrator import service, servicer
from tests.orchestrator.messages import launch_request
from tests.unit.orchestrator.helpers import Rig

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


async def _launch(
    orchestrator: service.Orchestrator, fields: dict[str, Any], *, backend: str = "local"
) -> tuple[grpc.StatusCode, str, str]:
    request = launch_request(backend=backend, **fields)
    try:
        service_id = await orchestrator.launch(servicer.launch_request(request))
    except errors.DomainError as error:
        return error.code, errors.describe(error), ""
    return OK, "", service_id


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [pytest.param(f, c, m, id=name) for name, f, c, m in CASES],
)
async def test_launch_rule(
    rig: Rig,
    orchestrator: service.Orchestrator,
    fields: dict[str, Any],
    code: grpc.StatusCode,
    message: str,
) -> None:
    for file_id in fields.get("mount_files") or {}:
        rig.files.add("in.xlsx", b"x", file_id=file_id)
    got_code, details, service_id = await _launch(orchestrator, fields)
    assert got_code == code, details
    assert message in details
    if code == OK:
        assert rig.records.records[service_id].state == "launched"
        assert service_id in rig.store.resources
        return
    assert rig.records.records == {}, "a refused launch leaves no record"
    assert rig.store.resources == {}, "a refused launch leaves no resource"


async def test_the_local_backend_without_containers_needs_a_command(
    orchestrator: service.Orchestrator,
) -> None:
    code, message, _ = await _launch(orchestrator, {}, backend="kubernetes")  # no command
    assert code == INVALID
    assert message.startswith("command: required by the local backend")
    # ... and says how to run the image instead
    assert "DTPOC_ORCHESTRATOR_LOCAL_CONTAINERS=true" in message
    assert "DTPOC_OPERATOR_LOCAL_CONTAINER_ENGINE" in message


async def test_the_local_backend_with_containers_takes_the_originals_body(rig: Rig) -> None:
    orchestrator = rig.orchestrator(local_containers=True)
    fields = {"image": "ghcr.io/cam-digital-hospitals/digital-hosp-des", "version": "latest"}
    code, details, service_id = await _launch(orchestrator, fields, backend="kubernetes")
    assert code == OK, details
    view = await orchestrator.get_service(service_id)
    assert (view.record.spec.image, view.record.spec.version) == (
        "ghcr.io/cam-digital-hospitals/digital-hosp-des",
        "latest",
    )


async def test_empty_version_becomes_latest(rig: Rig, orchestrator: service.Orchestrator) -> None:
    _, _, service_id = await _launch(orchestrator, {"version": ""})
    view = await orchestrator.get_service(service_id)
    assert view.record.spec.version == "latest"
    assert rig.store.resources[service_id]["spec"]["version"] == "latest"


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass


@pytest.mark.parametrize("bad_id", ["", "xyz", "0123456789abcdef0123456", "g" * 24])
async def test_malformed_ids_are_invalid_argument(
    orchestrator: service.Orchestrator, bad_id: str
) -> None:
    edge = servicer.OrchestratorServicer(orchestrator)
    calls = [
        edge.GetService(orchestrator_pb2.GetServiceRequest(id=bad_id), None),
        edge.GetServiceStatus(orchestrator_pb2.GetServiceStatusRequest(id=bad_id), None),
        edge.GetServiceOutput(orchestrator_pb2.GetServiceOutputRequest(id=bad_id, idx=0), None),
        edge.ListServiceOutputs(orchestrator_pb2.ListServiceOutputsRequest(id=bad_id), None),
        edge.TerminateService(orchestrator_pb2.TerminateServiceRequest(id=bad_id), None),
        _drain(edge.WatchService(orchestrator_pb2.WatchServiceRequest(id=bad_id), None)),
    ]
    for call in calls:
        with pytest.raises(errors.InvalidArgument) as raised:
            await call
        assert errors.describe(raised.value).startswith("id: must be 24 hexadecimal digits")


async def test_unknown_ids_are_not_found(orchestrator: service.Orchestrator) -> None:
    unknown = "0" * 24
    with pytest.raises(errors.NotFound) as raised:
        await orchestrator.get_status(unknown)
    assert unknown in raised.value.message
    with pytest.raises(errors.NotFound):
        await orchestrator.terminate(unknown)
