"""Retry, resubmit, suspend and resume on the fakes, as a caller of the API notices them:
what is refused (and why, FAILED_PRECONDITION: REST 400), what the desired state becomes,
and how a resubmission is linked to its origin in both records."""

from __future__ import annotations

from typing import Any

import pytest

from dtpoc_common import errors
from dtpoc_orchestrator import service, servicer
from tests.orchestrator.messages import launch_request, status_dict
from tests.unit.orchestrator.helpers import Rig

SCHEDULED = {"ana": {"job_type": "scheduled", "reps": 1, "schedule": "*/5 * * * *"}}


async def launch(rig: Rig, orchestrator: service.Orchestrator, **fields: Any) -> str:
    rig.clock.advance(1)
    return await orchestrator.launch(servicer.launch_request(launch_request(**fields)))


def replica(index: int, state: str, **fields: Any) -> dict[str, Any]:
    return {"index": index, "state": state, "run": "", **fields}


def one_of_three_failed(rig: Rig, service_id: str) -> None:
    replicas = [replica(0, "succeeded"), replica(1, "failed"), replica(2, "succeeded")]
    rig.store.write_status(
        service_id,
        status_dict(phase="failed", succeeded=2, failed=1, total=3, replicas=replicas),
    )


async def test_retry_asks_for_the_next_attempt_of_the_failed_replicas_only() -> None:
    rig = Rig()
    orchestrator = rig.orchestrator()
    service_id = await launch(rig, orchestrator, ana={"job_type": "ondemand", "reps": 3})
    one_of_three_failed(rig, service_id)
    assert (await orchestrator.retry(service_id)).attempts == {1: 2}
    spec = rig.store.resources[service_id]["spec"]
    assert spec["replicaAttempts"] == {"1": 2}
    assert rig.store.resources[service_id]["metadata"]["generation"] == 2
    record = rig.records.records[service_id]
    assert dict(record.spec.replica_attempts) == {1: 2}, "the record follows the desired state"
    with pytest.raises(errors.FailedPrecondition, match="under way"):
        await orchestrator.retry(service_id)
    # The retried attempt failed as well: the next retry asks for attempt 3.
    replicas = [replica(0, "succeeded"), replica(1, "failed", attempt=2), replica(2, "succeeded")]
    rig.store.write_status(
        service_id, status_dict(phase="failed", succeeded=2, failed=1, total=3, replicas=replicas)
    )
    assert (await orchestrator.retry(service_id)).attempts == {1: 3}


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ({"phase": "running", "active": 1, "total": 1}, "still running"),
        ({}, "still pending"),
        ({"phase": "succeeded", "succeeded": 1, "total": 1}, "no failed replica"),
    ],
)
async def test_retry_is_refused_until_there_is_a_finished_failure(
    status: dict[str, Any], words: str
) -> None:
    rig = Rig()
    orchestrator = rig.orchestrator()
    service_id = await launch(rig, orchestrator, ana={"job_type": "ondemand", "reps": 1})
    if status:
        rig.store.write_status(service_id, status_dict(**status))
    with pytest.raises(errors.FailedPrecondition, match=words):
        await orchestrator.retry(service_id)
    assert "replicaAttempts" not in rig.store.resources[service_id]["spec"]


async def test_retry_of_a_terminated_or_unknown_or_persistent_service_is_refused() -> None:
    rig = Rig()
    orchestrator = rig.orchestrator()
    service_id = await launch(rig, orchestrator, ana={"job_type": "ondemand", "reps": 3})
    one_of_three_failed(rig, service_id)
    await orchestrator.terminate(service_id)
    with pytest.raises(errors.FailedPrecondition, match=r"terminated.*resubmit"):
        await orchestrator.retry(service_id)
    with pytest.raises(errors.NotFound):
        await orchestrator.retry("0123456789abcdef01234567")
    persistent = await launch(rig, orchestrator, ana={"job_type": "persistent"}, port=8080)
    with pytest.raises(errors.FailedPrecondition, match="restarted in place"):
        await orchestrator.retry(persistent)


def runs_status(*runs: tuple[str, str, list[str]]) -> dict[str, Any]:
    """A scheduled service's status: (run, its state, its replicas' states), newest first."""
    replicas = [
        {"index": i, "state": state, "run": name}
        for name, _, states in runs
        for i, state in enumerate(states)
    ]
    return status_dict(
        phase="running",
        replicas=replicas,
        runs=[{"name": name, "state": state} for name, state, _ in runs],
    )


async def test_retry_of_a_scheduled_service_reruns_its_latest_finished_runs_failures() -> None:
    rig = Rig()
    orchestrator = rig.orchestrator()
    service_id = await launch(rig, orchestrator, **SCHEDULED)
    with pytest.raises(errors.FailedPrecondition, match="has not run yet"):
        await orchestrator.retry(service_id)
    older, newer = "ana-x-100", "ana-x-105"
    rig.store.write_status(
        service_id,
        runs_status((newer, "running", ["running"]), (older, "failed", ["failed"])),
    )
    with pytest.raises(errors.FailedPrecondition, match=f"run {newer} .* still running"):
        await orchestrator.retry(service_id)
    rig.store.write_status(
        service_id,
        runs_status((newer, "succeeded", ["succeeded"]), (older, "failed", ["failed"])),
    )
    with pytest.raises(errors.FailedPrecondition, match=f"latest run {newer} has no failed"):
        await orchestrator.retry(service_id)

    rig.store.write_status(service_id, runs_status((older, "failed", ["failed"])))
    retry = await orchestrator.retry(service_id)
    assert (retry.run, retry.attempts) == (older, {0: 2})
    spec = rig.store.resources[service_id]["spec"]
    assert (spec["retryRun"], spec["replicaAttempts"]) == (older, {"0": 2})
    with pytest.raises(errors.FailedPrecondition, match="under way"):
        await orchestrator.retry(service_id)
    # A later run fails: its retry replaces the earlier run's attempts.
    rig.store.write_status(
        service_id,
        runs_status((newer, "failed", ["failed"]), (older, "succeeded", ["succeeded"])),
    )
    retry = await orchestrator.retry(service_id)
    assert (retry.run, retry.attempts) == (newer, {0: 2})
    spec = rig.store.resources[service_id]["spec"]
    assert (spec["retryRun"], spec["replicaAttempts"]) == (newer, {"0": 2})


async def test_resubmit_launches_the_same_spec_linked_both_ways() -> None:
    rig = Rig()
    orchestrator = rig.orchestrator()
    file_id = rig.files.add("input.xlsx", b"x")
    original = await launch(
        rig,
        orchestrator,
        mount_files={file_id: "input.xlsx"},
        labels={"team": "lab"},
        ana={"job_type": "ondemand", "reps": 3},
    )
    one_of_three_failed(rig, original)
    await orchestrator.retry(original)
    await orchestrator.terminate(original)
    copy = await orchestrator.resubmit(original)
    assert copy != original
    first = await orchestrator.get_service(original)
    second = await orchestrator.get_service(copy)
    assert second.record.resubmitted_from == original
    assert first.record.resubmissions == (copy,)
    assert dict(second.record.spec.input_files) == {file_id: "input.xlsx"}
    assert second.record.labels == {"team": "lab"}
    assert second.record.spec.reps == 3
    assert not second.record.spec.replica_attempts, "a resubmission starts afresh"
    assert not second.record.terminated
    message = servicer.service_message(second)
    assert (message.resubmitted_from, list(servicer.service_message(first).resubmissions)) == (
        original,
        [copy],
    )


async def test_suspend_and_resume_a_scheduled_service_only() -> None:
    rig = Rig()
    orchestrator = rig.orchestrator()
    scheduled = await launch(rig, orchestrator, **SCHEDULED)
    message, view = await orchestrator.set_suspended(scheduled, suspend=True)
    assert "suspended" in message
    assert view.suspended and servicer.service_message(view).suspended
    assert rig.store.resources[scheduled]["spec"]["suspend"] is True
    _, view = await orchestrator.set_suspended(scheduled, suspend=True)  # again: the same
    assert view.suspended
    _, view = await orchestrator.set_suspended(scheduled, suspend=False)
    assert not view.suspended
    assert rig.store.resources[scheduled]["spec"]["suspend"] is False
    ondemand = await launch(rig, orchestrator)
    with pytest.raises(errors.FailedPrecondition, match="only a scheduled service"):
        await orchestrator.set_suspended(ondemand, suspend=True)
    await orchestrator.terminate(scheduled)
    with pytest.raises(errors.FailedPrecondition, match="terminated"):
        await orchestrator.set_suspended(scheduled, suspend=False)
