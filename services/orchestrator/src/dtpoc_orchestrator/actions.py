"""What retry, resubmit, suspend and resume may do to a service (pure rules).

Each refusal is FAILED_PRECONDITION (REST 400) naming why and what would
work instead: the request is well formed, the service is in the wrong state
for it.

- **Retry** runs the failed replicas of a *finished ondemand* service again,
  each as its next attempt: the spec's ``replicaAttempts[index]`` becomes the
  failed entry's ``attempt + 1``, and the operator runs exactly those
  indexes (the succeeded ones keep their entries and outputs). For a
  *scheduled* service the same is done to its latest finished run (the
  newest run, once it is no longer running), named by ``retryRun``; a retry
  of another run replaces both fields. A service still pending or running
  (scheduled: its newest run still runs, or none ran yet), one whose retry is
  under way (a desired attempt the status does not show yet), a terminated
  one, one without failures (in that run) and a persistent one are refused.
- **Resubmit** launches the same spec and inputs as a new service: attempts
  and suspension are not carried over (it starts afresh).
- **Suspend / resume** set ``spec.suspend`` of a *scheduled* service that is
  not terminated; other job types are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import errors
from dtpoc_common.vocabulary import FINAL_REPLICA_STATES, JobType, Phase, ReplicaState
from dtpoc_orchestrator import domain

#: Phases in which an ondemand service has finished (every replica final, collected).
FINISHED = frozenset({Phase.SUCCEEDED, Phase.FAILED})
#: Job types whose failed replicas a retry runs again.
RETRIED = frozenset({JobType.ONDEMAND, JobType.SCHEDULED})


def _not_terminated(record: domain.ServiceRecord, action: str, instead: str) -> None:
    if record.terminated:
        raise errors.FailedPrecondition(
            f"service {record.id} is terminated and cannot be {action}; {instead}"
        )


@dataclass(frozen=True)
class Retry:
    """What a retry asks for: the run (empty: an ondemand service's own) and the
    attempt each of its failed replicas runs as next, by index."""

    run: str
    attempts: dict[int, int]

    def changes(self, previous: analytics_pb2.AnalyticsSpec) -> dict[str, Any]:
        """The merge patch of the resource's spec: attempts, and the run of a scheduled
        service (a new run's attempts replace the previous run's, so those keys go)."""
        attempts: dict[str, int | None] = {str(i): a for i, a in self.attempts.items()}
        if not self.run:
            return {"replicaAttempts": attempts}
        if previous.retry_run != self.run:
            for index in previous.replica_attempts:
                attempts.setdefault(str(index), None)
        return {"replicaAttempts": attempts, "retryRun": self.run}


def _retried_run(record: domain.ServiceRecord, status: analytics_pb2.AnalyticsStatus) -> str:
    """The run a retry is for: an ondemand service's own (""), or a scheduled service's
    latest run once it has finished."""
    if record.spec.job_type == JobType.ONDEMAND:
        if status.phase not in FINISHED:
            raise errors.FailedPrecondition(
                f"service {record.id} is still {status.phase or Phase.PENDING}: a retry runs "
                "the failed replicas of a finished service; wait until it has finished"
            )
        return ""
    if not status.runs:
        raise errors.FailedPrecondition(
            f"service {record.id} has not run yet: there is nothing to retry"
        )
    newest = status.runs[0]  # newest first
    if newest.state not in FINAL_REPLICA_STATES:
        raise errors.FailedPrecondition(
            f"run {newest.name} of service {record.id} is still {newest.state or 'running'}: "
            "a retry runs the failed replicas of the latest finished run; wait until it "
            "has finished"
        )
    return newest.name


def retry_attempts(record: domain.ServiceRecord, resource: domain.AnalyticsObject | None) -> Retry:
    """What a retry of the service asks for (see module docs)."""
    _not_terminated(record, "retried", "resubmit it to run it again as a new service")
    if record.spec.job_type not in RETRIED:
        raise errors.FailedPrecondition(
            f"service {record.id} is {record.spec.job_type}: its replica is restarted in place, "
            "only ondemand and scheduled services' failed replicas are retried"
        )
    if resource is None or resource.deleting:
        raise errors.FailedPrecondition(
            f"service {record.id} has no workload resource to retry; resubmit it instead"
        )
    status = resource.status
    run = _retried_run(record, status)
    members = [r for r in status.replicas if not run or r.run == run]
    latest = {r.index: max(r.attempt, 1) for r in members}
    spec = resource.spec
    wanted = dict(spec.replica_attempts) if spec.retry_run == run else {}
    if any(attempt > latest.get(index, 1) for index, attempt in wanted.items()):
        raise errors.FailedPrecondition(
            f"a retry of service {record.id} is under way; wait until it has finished"
        )
    failed = sorted(r.index for r in members if r.state == ReplicaState.FAILED)
    if not failed:
        where = f"its latest run {run} has" if run else "it has"
        raise errors.FailedPrecondition(
            f"service {record.id}: {where} no failed replica, there is nothing to retry"
        )
    return Retry(run=run, attempts={index: latest[index] + 1 for index in failed})


def resubmitted_spec(record: domain.ServiceRecord) -> analytics_pb2.AnalyticsSpec:
    """The spec a resubmission launches: the record's, attempts and suspension cleared."""
    spec = analytics_pb2.AnalyticsSpec()
    spec.CopyFrom(record.spec)
    spec.ClearField("replica_attempts")
    spec.ClearField("retry_run")
    spec.ClearField("suspend")
    return spec


def check_suspendable(record: domain.ServiceRecord, *, suspend: bool) -> None:
    action = "suspended" if suspend else "resumed"
    _not_terminated(record, action, "resubmit it to run it again as a new service")
    if record.spec.job_type != JobType.SCHEDULED:
        raise errors.FailedPrecondition(
            f"service {record.id} is {record.spec.job_type}: only a scheduled service can be "
            f"{action} (it has runs to hold back)"
        )
