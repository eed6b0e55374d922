"""A service's status, derived from its record and the operator's Analytics status.

The rules, for every job type:

* No status yet (the operator has not looked): phase ``pending``, status
  ``running``, zero counts; ``total_runs`` is ``reps`` for an ondemand
  service, 0 for a scheduled one (no run yet), 1 for a persistent one.
* The resource vanished while the record is not terminated (someone deleted
  it by hand): phase ``failed``, status ``error``, message "workload resource
  missing". Never an error answer.
* Terminated record: phase ``terminated`` whatever the resource said, no
  replica counts as active (they were stopped); the counts come from the
  resource while it is still being deleted, then from the copy kept in the
  record (``last_status``).
* Otherwise the operator's phase and counts, and ``status``:

  - ``error`` when the phase is ``failed``;
  - ``running`` while the phase is ``pending`` or ``running``, except for a
    persistent service that is running and ready (condition ``Ready`` true,
    or all desired pods active), which is ``ok``: it is doing what it was
    launched to do;
  - ``ok`` when the phase is ``succeeded`` and nothing failed;
  - for a terminated service, ``ok`` when nothing failed and, for ondemand
    services, every replica had succeeded; ``error`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import message, timestamp_pb2

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common.vocabulary import FINAL_PHASES, JobType, Phase
from dtpoc_orchestrator import domain

MISSING_MESSAGE = "workload resource missing: the Analytics resource was deleted outside terminate"
WAITING_MESSAGE = "waiting for the operator to pick the service up"
TERMINATED_MESSAGE = "terminated on request; replicas that had not finished were stopped"


@dataclass(frozen=True)
class DerivedStatus:
    """What status answers say about a service at one moment."""

    phase: str
    status: str
    active: int
    succeeded: int
    failed: int
    total: int
    message: str
    job_type: str
    output_files: tuple[str, ...]
    #: The operator's status the answer came from (replicas, conditions,
    #: runs); empty when there is none.
    source: analytics_pb2.AnalyticsStatus
    updated_at: timestamp_pb2.Timestamp | None = None

    @property
    def final(self) -> bool:
        return self.phase in FINAL_PHASES


def default_total(spec: analytics_pb2.AnalyticsSpec) -> int:
    """Replicas expected before the operator has said anything."""
    if spec.job_type == JobType.ONDEMAND:
        return spec.reps
    if spec.job_type == JobType.PERSISTENT:
        return 1
    return 0


def source_status(
    record: domain.ServiceRecord, resource: domain.AnalyticsObject | None
) -> analytics_pb2.AnalyticsStatus:
    """The operator's status to answer from: the live one, else the kept copy."""
    if resource is not None and resource.has_status:
        return resource.status
    if record.last_status is not None:
        return record.last_status
    return analytics_pb2.AnalyticsStatus()


def derive(record: domain.ServiceRecord, resource: domain.AnalyticsObject | None) -> DerivedStatus:
    """The status of ``record`` given its resource (None when it does not exist)."""
    if record.terminated:
        return _terminated(record, source_status(record, resource))
    if resource is None:
        return _missing(record, source_status(record, resource))
    if not resource.has_status:
        return _waiting(record)
    return _reported(record, resource)


def _from_source(
    record: domain.ServiceRecord,
    source: analytics_pb2.AnalyticsStatus,
    *,
    phase: str,
    status: str,
    total: int,
    message: str,
) -> DerivedStatus:
    """A status with no replica active, its counts, outputs and time from ``source``."""
    return DerivedStatus(
        phase=phase,
        status=status,
        active=0,
        succeeded=source.succeeded,
        failed=source.failed,
        total=total,
        message=message,
        job_type=record.spec.job_type,
        output_files=output_file_ids(source),
        source=source,
        updated_at=latest_time(source),
    )


def _terminated(
    record: domain.ServiceRecord, source: analytics_pb2.AnalyticsStatus
) -> DerivedStatus:
    """Terminated on request: no replica active; ``ok`` when nothing failed and, for an
    ondemand service, every replica had succeeded."""
    total = source.total or default_total(record.spec)
    ok = source.failed == 0 and (
        record.spec.job_type != JobType.ONDEMAND or (total > 0 and source.succeeded >= total)
    )
    return _from_source(
        record,
        source,
        phase=Phase.TERMINATED,
        status=domain.STATUS_OK if ok else domain.STATUS_ERROR,
        total=total,
        message=TERMINATED_MESSAGE,
    )


def _missing(record: domain.ServiceRecord, source: analytics_pb2.AnalyticsStatus) -> DerivedStatus:
    """The resource was deleted outside terminate: failed, with the last counts known."""
    return _from_source(
        record,
        source,
        phase=Phase.FAILED,
        status=domain.STATUS_ERROR,
        total=source.total or default_total(record.spec),
        message=MISSING_MESSAGE,
    )


def _waiting(record: domain.ServiceRecord) -> DerivedStatus:
    """The operator has not looked yet: pending, the replicas the spec expects."""
    return DerivedStatus(
        phase=Phase.PENDING,
        status=domain.STATUS_RUNNING,
        active=0,
        succeeded=0,
        failed=0,
        total=default_total(record.spec),
        message=WAITING_MESSAGE,
        job_type=record.spec.job_type,
        output_files=(),
        source=analytics_pb2.AnalyticsStatus(),
    )


def _reported(record: domain.ServiceRecord, resource: domain.AnalyticsObject) -> DerivedStatus:
    """The operator's phase and counts as it reported them."""
    status = resource.status
    message = status.message
    if resource.deleting:
        message = "the workload resource is being deleted" + (f"; {message}" if message else "")
    return DerivedStatus(
        phase=status.phase,
        status=overall_status(record.spec.job_type, status),
        active=status.active,
        succeeded=status.succeeded,
        failed=status.failed,
        total=status.total,
        message=message,
        job_type=record.spec.job_type,
        output_files=output_file_ids(status),
        source=status,
        updated_at=latest_time(status),
    )


def overall_status(job_type: str, status: analytics_pb2.AnalyticsStatus) -> str:
    """``ok``, ``running`` or ``error`` for an operator's status (see module doc)."""
    phase = status.phase
    if phase == Phase.FAILED:
        return domain.STATUS_ERROR
    if phase in (Phase.PENDING, Phase.RUNNING):
        if job_type == JobType.PERSISTENT and phase == Phase.RUNNING and ready(status):
            return domain.STATUS_OK
        return domain.STATUS_RUNNING
    if phase == Phase.SUCCEEDED:
        return domain.STATUS_OK if status.failed == 0 else domain.STATUS_ERROR
    if phase == Phase.TERMINATED:
        return domain.STATUS_OK if status.failed == 0 else domain.STATUS_ERROR
    return domain.STATUS_RUNNING if status.active > 0 else domain.STATUS_ERROR


def ready(status: analytics_pb2.AnalyticsStatus) -> bool:
    """Whether a persistent service serves: its Ready condition, else all pods active."""
    for condition in status.conditions:
        if condition.type == "Ready":
            return condition.status == "True"
    return status.total > 0 and status.active >= status.total


def output_file_ids(status: analytics_pb2.AnalyticsStatus) -> tuple[str, ...]:
    """Every output file id the replicas list, in replica order, each once."""
    seen: dict[str, None] = {}
    for replica in status.replicas:
        for file_id in replica.output_file_ids:
            seen.setdefault(file_id, None)
    return tuple(seen)


def latest_time(status: analytics_pb2.AnalyticsStatus) -> timestamp_pb2.Timestamp | None:
    """The latest moment the status mentions: when the operator last changed it."""
    holders: list[tuple[message.Message, tuple[str, ...]]] = [
        (status, ("start_time", "completion_time")),
        *((condition, ("last_transition_time",)) for condition in status.conditions),
        *((replica, ("start_time", "finish_time")) for replica in status.replicas),
        *((run, ("schedule_time",)) for run in status.runs),
    ]
    stamps: list[timestamp_pb2.Timestamp] = [
        getattr(holder, name)
        for holder, names in holders
        for name in names
        if holder.HasField(name)
    ]
    if not stamps:
        return None
    return max(stamps, key=lambda t: (t.seconds, t.nanos))
