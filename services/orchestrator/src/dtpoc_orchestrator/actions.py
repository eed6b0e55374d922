"""What retry, resubmit, suspend and resume may do to a service (pure rules).

Each refusal is FAILED_PRECONDITION (REST 400) naming why and what would
work instead: the request is well formed, the service is in the wrong state
for it.

- **Retry** runs the failed replicas of a *finished ondemand* service again,
  each as its next attempt: the spec's ``replicaAttempts[index]`` becomes the
  failed entry's ``attempt + 1``, and the operator runs exactly those
  indexes (the succeeded ones keep their entries and outputs). A service
  still pending or running, one whose retry is under way (a desired attempt
  the status does not show yet), a terminated one, one without failures and
  any other job type are refused.
- **Resubmit** launches the same spec and inputs as a new service: attempts
  and suspension are not carried over (it starts afresh).
- **Suspend / resume** set ``spec.suspend`` of a *scheduled* service that is
  not terminated; other job types are refused.
"""

from __future__ import annotations

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import errors
from dtpoc_common.vocabulary import JobType, Phase, ReplicaState
from dtpoc_orchestrator import domain

#: Phases in which an ondemand service has finished (every replica final, collected).
FINISHED = frozenset({Phase.SUCCEEDED, Phase.FAILED})


def _not_terminated(record: domain.ServiceRecord, action: str, instead: str) -> None:
    if record.terminated:
        raise errors.FailedPrecondition(
            f"service {record.id} is terminated and cannot be {action}; {instead}"
        )


def retry_attempts(
    record: domain.ServiceRecord, resource: domain.AnalyticsObject | None
) -> dict[int, int]:
    """The attempt each failed replica runs as next, by index (see module docs)."""
    _not_terminated(record, "retried", "resubmit it to run it again as a new service")
    if record.spec.job_type != JobType.ONDEMAND:
        raise errors.FailedPrecondition(
            f"service {record.id} is {record.spec.job_type}: only an ondemand service's "
            "failed replicas are retried"
        )
    if resource is None or resource.deleting:
        raise errors.FailedPrecondition(
            f"service {record.id} has no workload resource to retry; resubmit it instead"
        )
    status = resource.status
    if status.phase not in FINISHED:
        raise errors.FailedPrecondition(
            f"service {record.id} is still {status.phase or Phase.PENDING}: a retry runs the "
            "failed replicas of a finished service; wait until it has finished"
        )
    latest = {r.index: max(r.attempt, 1) for r in status.replicas}
    wanted = dict(resource.spec.replica_attempts)
    if any(attempt > latest.get(index, 1) for index, attempt in wanted.items()):
        raise errors.FailedPrecondition(
            f"a retry of service {record.id} is under way; wait until it has finished"
        )
    failed = sorted(r.index for r in status.replicas if r.state == ReplicaState.FAILED)
    if not failed:
        raise errors.FailedPrecondition(
            f"service {record.id} has no failed replica: there is nothing to retry"
        )
    return {index: latest[index] + 1 for index in failed}


def resubmitted_spec(record: domain.ServiceRecord) -> analytics_pb2.AnalyticsSpec:
    """The spec a resubmission launches: the record's, attempts and suspension cleared."""
    spec = analytics_pb2.AnalyticsSpec()
    spec.CopyFrom(record.spec)
    spec.ClearField("replica_attempts")
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
