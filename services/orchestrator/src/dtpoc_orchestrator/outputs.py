"""Which replica entry answers ``output/{idx}``, and why none does.

``idx`` is a replica index (the Job completion index, 0..reps-1), never a
position in a list or map: the original picked the idx-th key of an
unordered map. For a scheduled service every run has replicas 0..reps-1;
the newest entry for the index answers (runs are ordered by the operator's
``runs`` list, newest first, else by start time).
"""

from __future__ import annotations

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import errors
from dtpoc_orchestrator import domain

FINISHED_STATES = frozenset({"succeeded", "failed"})


def replica_count(spec: analytics_pb2.AnalyticsSpec, status: analytics_pb2.AnalyticsStatus) -> int:
    """How many replica indexes the service has."""
    if spec.job_type in (domain.JOB_ONDEMAND, domain.JOB_SCHEDULED):
        return spec.reps
    indexes = [replica.index for replica in status.replicas]
    return max(indexes) + 1 if indexes else 1


def newest_by_index(
    status: analytics_pb2.AnalyticsStatus,
) -> dict[int, analytics_pb2.ReplicaStatus]:
    """The newest entry of each replica index."""
    run_rank = {run.name: position for position, run in enumerate(status.runs)}
    best: dict[int, analytics_pb2.ReplicaStatus] = {}

    def key(replica: analytics_pb2.ReplicaStatus, order: int) -> tuple[int, int, int, int]:
        # Smaller is newer: known runs by their position in `runs`, then start time, then
        # the later entry in the list.
        rank = run_rank.get(replica.run, len(run_rank))
        return (rank, -replica.start_time.seconds, -replica.start_time.nanos, -order)

    keys: dict[int, tuple[int, int, int, int]] = {}
    for order, replica in enumerate(status.replicas):
        candidate = key(replica, order)
        if replica.index not in best or candidate < keys[replica.index]:
            best[replica.index] = replica
            keys[replica.index] = candidate
    return best


def finished_replica(
    *,
    spec: analytics_pb2.AnalyticsSpec,
    status: analytics_pb2.AnalyticsStatus,
    idx: int,
) -> analytics_pb2.ReplicaStatus:
    """The finished entry of replica ``idx``; NOT_FOUND saying why there is none."""
    if idx < 0:
        raise errors.InvalidArgument(f"must be >= 0, got {idx}", field="idx")
    count = replica_count(spec, status)
    if idx >= count:
        plural = "replica" if count == 1 else "replicas"
        span = f", indexes 0..{count - 1}" if count > 1 else (", index 0" if count == 1 else "")
        raise errors.NotFound(f"no such replica: {idx} (the service has {count} {plural}{span})")
    replica = newest_by_index(status).get(idx)
    if replica is None:
        raise errors.NotFound(f"replica {idx} has not finished (state pending)")
    if replica.state not in FINISHED_STATES:
        raise errors.NotFound(
            f"replica {idx} has not finished (state {replica.state or 'pending'})"
        )
    return replica
