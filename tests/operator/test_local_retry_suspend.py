"""Retry of failed replicas and suspension of scheduled services in the local runtime.

The test writes the desired state exactly as the orchestrator's RetryService and
SuspendService do (``spec.replicaAttempts``, ``spec.suspend``: the local document one
generation up with a journal entry); the operator does the rest, with real processes.
The Kubernetes twins are in test_kube_retry_suspend.py, what both share in
retry_suspend.py.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from typing import Any

from dtpoc_common import analytics
from dtpoc_local import waiting
from tests.operator.retry_suspend import (
    FLAKY_ONE,
    all_collected,
    assert_retried,
    assert_run_retried,
    no_run_until,
    run_done,
    run_members,
    two_ticks_from,
)
from tests.operator.test_local_runtime import (  # noqa: F401 - the fixture is used by name
    LocalOperator,
    local_operator_factory,
)


def _patch_local(op: LocalOperator, service_id: str, changes: dict[str, Any]) -> None:
    """What the orchestrator's LocalAnalyticsStore.patch_spec writes."""
    document = op.collection.find_one({"_id": service_id})
    assert document is not None
    spec = analytics.merge_spec(analytics.unescape_keys(document["spec"]), changes)
    generation = int(document["metadata"].get("generation") or 1) + 1
    op.collection.update_one(
        {"_id": service_id},
        {"$set": {"spec": analytics.escape_keys(spec), "metadata.generation": generation}},
    )
    op.announce(service_id)


def test_local_retry_reruns_only_the_failed_index(
    local_operator_factory: Callable[..., LocalOperator],  # noqa: F811
) -> None:
    op = local_operator_factory()
    service_id = op.launch(
        {
            "image": "ghcr.io/example/sim",
            "jobType": "ondemand",
            "reps": 3,
            "command": [sys.executable, "-c", FLAKY_ONE],
        }
    )
    failed = op.wait_status(
        service_id, lambda s: s.get("phase") == "failed" and all_collected(s), "failed, collected"
    )
    assert [r["attempt"] for r in failed["replicas"]] == [1, 1, 1]
    assert [r["state"] for r in failed["replicas"]] == ["succeeded", "failed", "succeeded"]
    _patch_local(op, service_id, {"replicaAttempts": {"1": 2}})
    done = op.wait_status(service_id, lambda s: s.get("phase") == "succeeded", "succeeded")
    assert_retried(done, failed, op.files.content)
    (second,) = [r for r in done["replicas"] if r["index"] == 1]
    assert second["podName"] == f"{service_id}-1-1", "its second process"


def test_local_suspended_schedule_starts_no_run_and_resumes(
    local_operator_factory: Callable[..., LocalOperator],  # noqa: F811
) -> None:
    op = local_operator_factory()
    service_id = op.launch(
        {
            "image": "ghcr.io/example/sim",
            "jobType": "scheduled",
            "reps": 1,
            "schedule": "* * * * *",
            "suspend": True,
            "command": [sys.executable, "-c", "print('run')"],
        }
    )
    status = op.wait_status(service_id, lambda s: s.get("suspended") is True, "status suspended")
    assert status["phase"] == "pending"
    no_run_until(
        lambda: [r["name"] for r in op.status(service_id).get("runs") or []],
        two_ticks_from(dt.datetime.now(dt.UTC)),
        "two schedule ticks while suspended",
    )
    _patch_local(op, service_id, {"suspend": False})
    resumed = op.wait_status(
        service_id,
        lambda s: s.get("suspended") is False and bool(s.get("runs")),
        "resumed, with a run",
    )
    assert resumed["phase"] == "running"


def test_local_retry_of_a_scheduled_run_reruns_only_its_failed_index(
    local_operator_factory: Callable[..., LocalOperator],  # noqa: F811
) -> None:
    op = local_operator_factory()
    service_id = op.launch(
        {
            "image": "ghcr.io/example/sim",
            "jobType": "scheduled",
            "reps": 3,
            "schedule": "* * * * *",
            "command": [sys.executable, "-c", FLAKY_ONE],
        }
    )
    runs = waiting.wait_for(
        lambda: op.status(service_id).get("runs"),
        timeout=150,  # the next minute boundary, on a loaded machine
        what="the first scheduled run",
    )
    run = runs[0]["name"]
    _patch_local(op, service_id, {"suspend": True})  # no second run meanwhile
    failed = op.wait_status(service_id, run_done(run, "failed"), "the run failed, collected")
    assert [run_members(failed, run)[i]["state"] for i in range(3)] == [
        "succeeded",
        "failed",
        "succeeded",
    ]
    _patch_local(op, service_id, {"replicaAttempts": {"1": 2}, "retryRun": run})
    done = op.wait_status(service_id, run_done(run, "succeeded"), "the run succeeded")
    assert_run_retried(done, failed, run, op.files.content)
