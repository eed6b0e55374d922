"""The orchestrator's use cases on the fakes: launch (and its repair after a crash), list,
terminate and file usage, as a caller of the gRPC API would notice them.

The fakes pass the same contract tests as MongoDB, the API server, the local store and
the Files client (``tests/orchestrator/test_*_contract.py``); what only the real ones
show stays there (pushdown, unreachable servers, RBAC, the interceptor).
"""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import errors
from dtpoc_orchestrator import domain, service, servicer
from tests.orchestrator.messages import launch_request, status_dict
from tests.unit.orchestrator.helpers import GRACE_SECONDS, Rig


async def launch(rig: Rig, orchestrator: service.Orchestrator, **fields: Any) -> str:
    """A launch as the servicer makes it; one clock second per launch (newest first)."""
    rig.clock.advance(1)
    return await orchestrator.launch(servicer.launch_request(launch_request(**fields)))


def creating_record(rig: Rig, *, age_seconds: float, input_file_ids: tuple[str, ...] = ()) -> str:
    """The record a crash between "record inserted" and "resource written" leaves."""
    service_id = str(ObjectId())
    spec = analytics_pb2.AnalyticsSpec(
        image="ghcr.io/example/sim",
        version="1",
        job_type="ondemand",
        reps=1,
        input_files={i: f"in{n}.xlsx" for n, i in enumerate(input_file_ids)},
    )
    rig.records.records[service_id] = domain.ServiceRecord(
        id=service_id,
        state=domain.STATE_CREATING,
        created_at=rig.clock() - age_seconds,
        spec=spec,
        labels={},
        namespace=rig.store.namespace,
        backend=rig.store.backend,
    )
    return service_id


async def listed(orchestrator: service.Orchestrator, **query: Any) -> list[str]:
    query.setdefault("skip", 0)
    query.setdefault("limit", None)
    return [v.record.id for v in await orchestrator.list_services(**query)]


# --- launch -------------------------------------------------------------------------------


async def test_a_missing_input_file_is_not_found_and_writes_nothing(
    rig: Rig, orchestrator: service.Orchestrator
) -> None:
    present = rig.files.add("a.xlsx", b"a")
    missing = str(ObjectId())
    with pytest.raises(errors.NotFound) as raised:
        await launch(rig, orchestrator, mount_files={present: "a.xlsx", missing: "b.xlsx"})
    assert errors.describe(raised.value) == (
        f"mount_files: file {missing} does not exist in the files service"
    )
    assert rig.records.records == {}
    assert rig.store.resources == {}


async def test_a_missing_file_is_named_before_an_unreachable_files_service(
    rig: Rig, orchestrator: service.Orchestrator
) -> None:
    present = rig.files.add("a.xlsx", b"a")
    missing = str(ObjectId())  # after ``present``: checked second, the unreachable one first
    rig.files.faults.arm("prepare_mount", errors.Unavailable("files service unreachable"))
    with pytest.raises(errors.NotFound):
        await launch(rig, orchestrator, mount_files={present: "a.xlsx", missing: "b.xlsx"})
    assert rig.records.records == {}


async def test_a_store_that_cannot_say_whether_it_wrote_leaves_neither(
    rig: Rig, orchestrator: service.Orchestrator
) -> None:
    rig.store.faults.arm("create", errors.Unavailable("the Kubernetes API server is unreachable"))
    with pytest.raises(errors.Unavailable):
        await launch(rig, orchestrator)
    assert rig.records.records == {}, "the resource's deletion was asked for, then the record went"
    assert rig.store.resources == {}


async def test_an_unknown_outcome_that_cannot_be_undone_keeps_the_record_hidden(
    rig: Rig, orchestrator: service.Orchestrator
) -> None:
    rig.store.faults.arm("create", errors.Unavailable("unreachable"))
    rig.store.faults.arm("delete", errors.Unavailable("unreachable"))
    with pytest.raises(errors.Unavailable):
        await launch(rig, orchestrator)
    [kept] = rig.records.records.values()
    assert kept.state == domain.STATE_CREATING
    assert await listed(orchestrator) == []


async def test_a_refused_resource_removes_the_record(
    rig: Rig, orchestrator: service.Orchestrator
) -> None:
    rig.store.faults.arm("create", errors.FailedPrecondition("namespace lab does not exist"))
    with pytest.raises(errors.FailedPrecondition):
        await launch(rig, orchestrator)
    assert rig.records.records == {}


async def test_a_launch_settled_away_meanwhile_is_rolled_back(
    rig: Rig, orchestrator: service.Orchestrator
) -> None:
    mark_launched = rig.records.mark_launched

    async def settled_away(service_id: str) -> bool:
        await rig.records.delete_creating(service_id)  # another reader's settle won
        return await mark_launched(service_id)

    rig.records.mark_launched = settled_away  # type: ignore[method-assign]
    with pytest.raises(errors.Aborted):
        await launch(rig, orchestrator)
    assert rig.records.records == {}
    assert all(r["metadata"].get("deletionTimestamp") for r in rig.store.resources.values())


async def test_a_crashed_launch_without_resource_is_removed_after_the_grace_period(
    rig: Rig, orchestrator: service.Orchestrator
) -> None:
    stale = creating_record(rig, age_seconds=GRACE_SECONDS + 1)
    fresh = creating_record(rig, age_seconds=0)
    assert await listed(orchestrator) == []
    # The stale one is gone for good; the fresh one (a launch in progress) stays hidden.
    assert stale not in rig.records.records
    assert rig.records.records[fresh].state == domain.STATE_CREATING
    with pytest.raises(errors.NotFound):
        await orchestrator.get_service(fresh)


async def test_a_crashed_launch_whose_resource_exists_is_completed(
    rig: Rig, orchestrator: service.Orchestrator
) -> None:
    service_id = creating_record(rig, age_seconds=GRACE_SECONDS + 1)
    await rig.store.create(
        service_id=service_id, spec=rig.records.records[service_id].spec, labels={}
    )
    view = await orchestrator.get_service(service_id)
    assert view.status.phase == "pending"
    assert rig.records.records[service_id].state == domain.STATE_LAUNCHED
    assert await listed(orchestrator) == [service_id]


async def test_a_launch_in_progress_counts_as_a_file_user(
    rig: Rig, orchestrator: service.Orchestrator
) -> None:
    """Between "record inserted" and "resource written" the file must not be deleted;
    a launch that died there stops counting once it is settled away."""
    file_id = str(ObjectId())
    in_progress = creating_record(rig, age_seconds=0, input_file_ids=(file_id,))
    dead = creating_record(rig, age_seconds=GRACE_SECONDS + 1, input_file_ids=(file_id,))
    usage = await orchestrator.file_usage(file_id)
    assert usage.active == [in_progress]
    assert dead not in rig.records.records


# --- list ---------------------------------------------------------------------------------


async def test_paging_newest_first_and_filters(
    rig: Rig, orchestrator: service.Orchestrator
) -> None:
    launched = [
        await launch(rig, orchestrator, ana={"job_type": "ondemand", "reps": 1}) for _ in range(12)
    ]
    newest_first = list(reversed(launched))

    assert await listed(orchestrator) == newest_first[:10]  # no limit means 10
    assert await listed(orchestrator, limit=1000) == newest_first
    assert await listed(orchestrator, skip=10, limit=5) == newest_first[10:]
    assert await listed(orchestrator, skip=3, limit=2) == newest_first[3:5]
    assert await listed(orchestrator, skip=50) == []

    rig.store.write_status(launched[0], status_dict(phase="succeeded", succeeded=1, total=1))
    rig.store.write_status(launched[1], status_dict(phase="failed", failed=1, total=1))
    rig.store.write_status(launched[2], status_dict(phase="running", active=1, total=1))
    await orchestrator.terminate(launched[3])

    assert await listed(orchestrator, status_filter="succeeded") == [launched[0]]
    assert await listed(orchestrator, status_filter="ok") == [launched[0]]
    assert await listed(orchestrator, status_filter="failed") == [launched[1]]
    assert await listed(orchestrator, status_filter="terminated") == [launched[3]]
    assert set(await listed(orchestrator, status_filter="error")) == {launched[1], launched[3]}
    pending = [i for i in newest_first if i not in launched[:4]]
    assert await listed(orchestrator, status_filter="pending", limit=1000) == pending
    # "running" is both a phase and a status: the running one and every pending one.
    running = [i for i in newest_first if i in pending or i == launched[2]]
    assert await listed(orchestrator, status_filter="running", limit=1000) == running
    assert await listed(orchestrator, status_filter="pending", skip=2, limit=3) == pending[2:5]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"skip": -1}, "skip: must be >= 0, got -1"),
        ({"limit": -1}, "limit: must be between 1 and 1000, got -1"),
        ({"limit": 0}, "limit: must be between 1 and 1000, got 0"),
        ({"limit": 1001}, "limit: must be between 1 and 1000, got 1001"),
        ({"status_filter": "done"}, "status: must be one of"),
    ],
)
async def test_bad_paging_is_invalid_argument(
    orchestrator: service.Orchestrator, query: dict[str, Any], message: str
) -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        await listed(orchestrator, **query)
    assert errors.describe(raised.value).startswith(message)


# --- terminate and file usage --------------------------------------------------------------


async def test_terminating_a_finished_service_keeps_its_ok(
    rig: Rig, orchestrator: service.Orchestrator
) -> None:
    service_id = await launch(rig, orchestrator, ana={"job_type": "ondemand", "reps": 1})
    rig.store.write_status(
        service_id,
        status_dict(
            phase="succeeded", succeeded=1, total=1, replicas=[{"index": 0, "state": "succeeded"}]
        ),
    )
    _, view = await orchestrator.terminate(service_id)
    assert (view.status.phase, view.status.status, view.status.succeeded) == (
        "terminated",
        "ok",
        1,
    )


@pytest.mark.parametrize("job_type", ["scheduled", "persistent"])
async def test_terminating_scheduled_and_persistent_services(
    rig: Rig, orchestrator: service.Orchestrator, job_type: str
) -> None:
    fields: dict[str, Any] = (
        {"ana": {"job_type": "scheduled", "reps": 1, "schedule": "*/5 * * * *"}}
        if job_type == "scheduled"
        else {"ana": {"job_type": "persistent"}, "port": 8080}
    )
    service_id = await launch(rig, orchestrator, **fields)
    rig.store.write_status(service_id, status_dict(phase="running", active=1, total=1))
    _, view = await orchestrator.terminate(service_id)
    assert (view.status.phase, view.status.status, view.status.active) == ("terminated", "ok", 0)


async def test_terminating_before_the_operator_looked_and_again(
    rig: Rig, orchestrator: service.Orchestrator
) -> None:
    service_id = await launch(rig, orchestrator)
    message, view = await orchestrator.terminate(service_id)
    assert view.status.phase == "terminated"
    assert view.status.total == 2
    terminated_at = rig.records.records[service_id].terminated_at
    assert rig.store.resources[service_id]["metadata"]["deletionTimestamp"]
    rig.clock.advance(30)
    again, view = await orchestrator.terminate(service_id)
    assert again == message
    assert rig.records.records[service_id].terminated_at == terminated_at


async def test_terminate_unknown_is_not_found(orchestrator: service.Orchestrator) -> None:
    with pytest.raises(errors.NotFound):
        await orchestrator.terminate(str(ObjectId()))


async def test_file_usage_splits_active_and_terminated(
    rig: Rig, orchestrator: service.Orchestrator
) -> None:
    shared = rig.files.add("shared.xlsx", b"shared")
    other = rig.files.add("other.xlsx", b"other")
    first = await launch(rig, orchestrator, mount_files={shared: "input.xlsx"})
    second = await launch(
        rig, orchestrator, mount_files={shared: "input.xlsx", other: "other.xlsx"}
    )
    third = await launch(rig, orchestrator, mount_files={other: "other.xlsx"})
    await orchestrator.terminate(first)

    async def usage(file_id: str) -> tuple[list[str], list[str]]:
        found = await orchestrator.file_usage(file_id)
        return found.active, found.terminated

    assert await usage(shared) == ([second], [first])
    assert await usage(other) == ([second, third], [])
    assert await usage(str(ObjectId())) == ([], [])
    with pytest.raises(errors.InvalidArgument) as raised:
        await usage("not-an-id")
    assert errors.describe(raised.value).startswith("file_id:")
