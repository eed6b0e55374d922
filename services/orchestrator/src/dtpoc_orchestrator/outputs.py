"""Which replica entry answers ``output/{idx}``, and why none does.

``idx`` is a replica index (the Job completion index, 0..reps-1), never a
position in a list or map: the original picked the idx-th key of an
unordered map. For a scheduled service every run has replicas 0..reps-1;
the newest entry for the index answers (runs are ordered by the operator's
``runs`` list, newest first, else by start time).
"""

from __future__ import annotations

import json
import math
from typing import Any

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import errors, limits
from dtpoc_common.vocabulary import FINAL_REPLICA_STATES, JobType


def replica_count(spec: analytics_pb2.AnalyticsSpec, status: analytics_pb2.AnalyticsStatus) -> int:
    """How many replica indexes the service has."""
    if spec.job_type in (JobType.ONDEMAND, JobType.SCHEDULED):
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


def replica_entry(
    *,
    spec: analytics_pb2.AnalyticsSpec,
    status: analytics_pb2.AnalyticsStatus,
    idx: int,
) -> analytics_pb2.ReplicaStatus | None:
    """The newest entry of replica ``idx``, None before it has one; INVALID_ARGUMENT
    or NOT_FOUND for an index the service does not have."""
    if idx < 0:
        raise errors.InvalidArgument(f"must be >= 0, got {idx}", field="idx")
    count = replica_count(spec, status)
    if idx >= count:
        plural = "replica" if count == 1 else "replicas"
        span = f", indexes 0..{count - 1}" if count > 1 else (", index 0" if count == 1 else "")
        raise errors.NotFound(f"no such replica: {idx} (the service has {count} {plural}{span})")
    return newest_by_index(status).get(idx)


def finished_replica(
    *,
    spec: analytics_pb2.AnalyticsSpec,
    status: analytics_pb2.AnalyticsStatus,
    idx: int,
) -> analytics_pb2.ReplicaStatus:
    """The finished entry of replica ``idx``; NOT_FOUND saying why there is none."""
    replica = replica_entry(spec=spec, status=status, idx=idx)
    if replica is None:
        raise errors.NotFound(f"replica {idx} has not finished (state pending)")
    if replica.state not in FINAL_REPLICA_STATES:
        raise errors.NotFound(
            f"replica {idx} has not finished (state {replica.state or 'pending'})"
        )
    return replica


class NotInline(ValueError):
    """A replica's output that ``output/{idx}`` answers as its file list instead."""


def _refuse_constant(name: str) -> None:
    raise NotInline(f"{name} is not JSON")


def parse_inline(content: bytes) -> Any:
    """The output document when it can travel inline as a ``google.protobuf.Value``.

    NotInline when it is not JSON, holds a number JSON cannot carry (NaN,
    Infinity, 1e400), nests deeper than :data:`limits.MAX_OUTPUT_DEPTH` or
    would encode larger than :data:`limits.MAX_OUTPUT_VALUE_BYTES`; the client
    then gets the file list and downloads the file, streamed, from Files.
    """
    try:
        document = json.loads(content, parse_constant=_refuse_constant)
    except NotInline:
        raise
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotInline("not JSON") from exc
    except RecursionError as exc:
        raise NotInline(f"nests deeper than {limits.MAX_OUTPUT_DEPTH} levels") from exc
    _check_shape(document)
    return document


def _check_shape(document: Any) -> None:
    """Depth, finiteness and an upper bound of the encoded size, without recursion."""
    size = 0
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > limits.MAX_OUTPUT_DEPTH:
            raise NotInline(f"nests deeper than {limits.MAX_OUTPUT_DEPTH} levels")
        if isinstance(node, dict):
            size += 8
            for key, value in node.items():
                size += len(key.encode()) + 8
                pending.append((value, depth + 1))
        elif isinstance(node, list):
            size += 8
            pending.extend((value, depth + 1) for value in node)
        elif isinstance(node, str):
            size += len(node.encode()) + 8
        elif isinstance(node, float) and not math.isfinite(node):
            raise NotInline("holds a number beyond the range of a double")
        else:
            size += 12
        if size > limits.MAX_OUTPUT_VALUE_BYTES:
            raise NotInline(f"would encode larger than {limits.MAX_OUTPUT_VALUE_BYTES} bytes")
