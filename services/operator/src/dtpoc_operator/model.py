"""The operator's domain types: what a service asks for, what was observed, what its status says.

Plain dataclasses, no I/O. The generated proto types
(``AnalyticsSpec``/``AnalyticsStatus``) are converted here, at the edge, so
that the reconciler and the status rules work on small, typed values with
the defaults already applied.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from google.protobuf import timestamp_pb2

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common.vocabulary import FINAL_REPLICA_STATES, JobType

#: Default history limits of a scheduled service (the CronJob defaults).
DEFAULT_SUCCESSFUL_HISTORY = 3
DEFAULT_FAILED_HISTORY = 1
#: Spec fields that say what to run when, not how: left out of the fingerprint.
_NOT_TEMPLATE = frozenset({"replica_attempts", "retry_run", "suspend"})


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class ServiceKey:
    """Identifies one service: its namespace (empty in the local store) and id."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True)
class ServiceSpec:
    """An Analytics spec with every default applied."""

    image: str
    version: str
    job_type: str
    port: int | None
    reps: int
    schedule: str
    env: Mapping[str, str]
    command: tuple[str, ...]
    args: tuple[str, ...]
    parallelism: int
    backoff_limit_per_index: int
    active_deadline_seconds: int | None
    ttl_seconds_after_finished: int | None
    requests: Mapping[str, str]
    limits: Mapping[str, str]
    input_files: Mapping[str, str]
    successful_jobs_history_limit: int
    failed_jobs_history_limit: int
    #: The launch asked to publish this persistent service outside the cluster.
    expose: bool = False
    #: Desired attempt per replica index (absent: 1); a retry raises a failed index's.
    replica_attempts: Mapping[int, int] = field(default_factory=dict)
    #: A scheduled service starts no new run while true.
    suspend: bool = False
    #: The run of a scheduled service that ``replica_attempts`` retries ("" for ondemand).
    retry_run: str = ""

    def attempt_of(self, index: int) -> int:
        """The attempt replica ``index`` should be at (1 unless retried)."""
        return max(self.replica_attempts.get(index, 1), 1)

    def retried_run(self, service_id: str) -> str:
        """The run ``replica_attempts`` is for: an ondemand service's own, or ``retry_run``."""
        return self.retry_run if self.job_type == JobType.SCHEDULED else service_id

    def attempt_in(self, run: str, index: int, *, service_id: str) -> int:
        """The attempt replica ``index`` of ``run`` should be at (1 unless that run's retried)."""
        return self.attempt_of(index) if run == self.retried_run(service_id) else 1

    @classmethod
    def from_proto(cls, spec: analytics_pb2.AnalyticsSpec) -> ServiceSpec:
        persistent = spec.job_type == JobType.PERSISTENT
        reps = 1 if persistent else (spec.reps if spec.HasField("reps") else 1)
        return cls(
            image=spec.image,
            version=spec.version,
            job_type=spec.job_type,
            port=spec.port if spec.HasField("port") else None,
            reps=reps,
            schedule=spec.schedule,
            env=dict(spec.env),
            command=tuple(spec.command),
            args=tuple(spec.args),
            parallelism=min(spec.parallelism, reps) if spec.HasField("parallelism") else reps,
            backoff_limit_per_index=(
                spec.backoff_limit_per_index if spec.HasField("backoff_limit_per_index") else 0
            ),
            active_deadline_seconds=(
                spec.active_deadline_seconds if spec.HasField("active_deadline_seconds") else None
            ),
            ttl_seconds_after_finished=(
                spec.ttl_seconds_after_finished
                if spec.HasField("ttl_seconds_after_finished")
                else None
            ),
            requests=dict(spec.resources.requests),
            limits=dict(spec.resources.limits),
            input_files=dict(spec.input_files),
            successful_jobs_history_limit=(
                spec.successful_jobs_history_limit
                if spec.HasField("successful_jobs_history_limit")
                else DEFAULT_SUCCESSFUL_HISTORY
            ),
            failed_jobs_history_limit=(
                spec.failed_jobs_history_limit
                if spec.HasField("failed_jobs_history_limit")
                else DEFAULT_FAILED_HISTORY
            ),
            expose=spec.expose,
            replica_attempts=dict(spec.replica_attempts),
            suspend=spec.suspend,
            retry_run=spec.retry_run,
        )

    @property
    def image_ref(self) -> str:
        """``image:version`` (``latest`` when no version); a digest reference stays as is.

        Without a version an image that carries its own tag keeps it: the
        original's sample Analytics says ``image: ...digital-hosp-des:latest``
        and no version (``...:latest:latest`` is no reference at all).
        """
        if "@" in self.image:
            return self.image
        if not self.version and ":" in self.image.rsplit("/", 1)[-1]:
            return self.image
        return f"{self.image}:{self.version or 'latest'}"

    def fingerprint(self) -> str:
        """A short stable hash of the spec, stored on children to notice spec changes."""
        # What a retry or a suspension changes is no change of the workload's template.
        fields = {k: v for k, v in self.__dict__.items() if k not in _NOT_TEMPLATE}
        payload = json.dumps(
            {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in fields.items()},
            sort_keys=True,
            default=list,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AnalyticsResource:
    """One Analytics object as a store returns it."""

    key: ServiceKey
    uid: str
    generation: int
    spec: ServiceSpec
    status: Status
    deleting: bool = False
    deletion_time: dt.datetime | None = None
    creation_time: dt.datetime | None = None
    finalizers: tuple[str, ...] = ()
    resource_version: str = ""
    raw_status: Mapping[str, Any] = field(default_factory=dict)

    @property
    def service_id(self) -> str:
        return self.key.name


# --- status ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaLog:
    """The stored log of one attempt (see ``ReplicaLog`` in the proto)."""

    attempt: int
    file_id: str
    truncated: bool = False


@dataclass(frozen=True)
class Replica:
    """One replica's entry in the status (see ``ReplicaStatus`` in the proto)."""

    run: str
    index: int
    state: str
    start_time: dt.datetime | None = None
    finish_time: dt.datetime | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    output_file_ids: tuple[str, ...] = ()
    pod_name: str = ""
    outputs_collected: bool = False
    #: 1 for the replica's first run, one more per retry of it (``DTPOC_ATTEMPT``).
    attempt: int = 1
    logs: tuple[ReplicaLog, ...] = ()

    @property
    def key(self) -> tuple[str, int]:
        return (self.run, self.index)

    @property
    def final(self) -> bool:
        return self.state in FINAL_REPLICA_STATES


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: dt.datetime | None = None


@dataclass(frozen=True)
class Run:
    """One run of a scheduled service."""

    name: str
    schedule_time: dt.datetime | None
    state: str


@dataclass(frozen=True)
class Status:
    phase: str = ""
    observed_generation: int = 0
    conditions: tuple[Condition, ...] = ()
    replicas: tuple[Replica, ...] = ()
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    total: int = 0
    message: str = ""
    start_time: dt.datetime | None = None
    completion_time: dt.datetime | None = None
    runs: tuple[Run, ...] = ()
    #: A scheduled service that starts no new run (``spec.suspend`` applied).
    suspended: bool = False

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


# --- observation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """What a runtime sees of a service's workload right now.

    ``replicas`` are the replicas of the runs in ``live_runs`` (runs whose
    workload still exists); a replica reported ``failed`` has failed for good
    (its retries are used up). Entries of runs that are not live any more are
    kept from the previous status.
    """

    replicas: tuple[Replica, ...] = ()
    runs: tuple[Run, ...] = ()
    live_runs: frozenset[str] = frozenset()
    #: The workload is up: a persistent service is available, a CronJob exists.
    ready: bool = False
    #: A configuration problem that makes the service fail, as (reason, message).
    problem: tuple[str, str] | None = None
    #: Why the workload is not ready, as (reason, message), when known.
    waiting: tuple[str, str] | None = None
    #: The workload starts no new run (a suspended CronJob or local schedule).
    suspended: bool = False


# --- proto conversion (the edge) -------------------------------------------------------------


def _ts_to_dt(ts: timestamp_pb2.Timestamp, present: bool) -> dt.datetime | None:
    if not present:
        return None
    return ts.ToDatetime(tzinfo=dt.UTC)


def _set_ts(target: timestamp_pb2.Timestamp, value: dt.datetime | None) -> None:
    if value is not None:
        target.FromDatetime(value.astimezone(dt.UTC))


def status_from_proto(status: analytics_pb2.AnalyticsStatus) -> Status:
    return Status(
        phase=status.phase,
        observed_generation=status.observed_generation,
        conditions=tuple(
            Condition(
                type=c.type,
                status=c.status,
                reason=c.reason,
                message=c.message,
                last_transition_time=_ts_to_dt(
                    c.last_transition_time, c.HasField("last_transition_time")
                ),
            )
            for c in status.conditions
        ),
        replicas=tuple(
            Replica(
                run=r.run,
                index=r.index,
                state=r.state,
                start_time=_ts_to_dt(r.start_time, r.HasField("start_time")),
                finish_time=_ts_to_dt(r.finish_time, r.HasField("finish_time")),
                exit_code=r.exit_code if r.HasField("exit_code") else None,
                reason=r.reason,
                message=r.message,
                output_file_ids=tuple(r.output_file_ids),
                pod_name=r.pod_name,
                outputs_collected=r.outputs_collected,
                attempt=r.attempt or 1,
                logs=tuple(
                    ReplicaLog(attempt=g.attempt, file_id=g.file_id, truncated=g.truncated)
                    for g in r.logs
                ),
            )
            for r in status.replicas
        ),
        active=status.active,
        succeeded=status.succeeded,
        failed=status.failed,
        total=status.total,
        message=status.message,
        start_time=_ts_to_dt(status.start_time, status.HasField("start_time")),
        completion_time=_ts_to_dt(status.completion_time, status.HasField("completion_time")),
        runs=tuple(
            Run(
                name=r.name,
                schedule_time=_ts_to_dt(r.schedule_time, r.HasField("schedule_time")),
                state=r.state,
            )
            for r in status.runs
        ),
        suspended=status.suspended,
    )


def status_to_proto(status: Status) -> analytics_pb2.AnalyticsStatus:
    out = analytics_pb2.AnalyticsStatus(
        phase=status.phase,
        observed_generation=status.observed_generation,
        active=status.active,
        succeeded=status.succeeded,
        failed=status.failed,
        total=status.total,
        message=status.message,
        suspended=status.suspended,
    )
    _set_ts(out.start_time, status.start_time)
    _set_ts(out.completion_time, status.completion_time)
    for c in status.conditions:
        pc = out.conditions.add(type=c.type, status=c.status, reason=c.reason, message=c.message)
        _set_ts(pc.last_transition_time, c.last_transition_time)
    for r in status.replicas:
        pr = out.replicas.add(
            index=r.index,
            state=r.state,
            reason=r.reason,
            message=r.message,
            output_file_ids=list(r.output_file_ids),
            run=r.run,
            pod_name=r.pod_name,
            outputs_collected=r.outputs_collected,
            attempt=r.attempt,
        )
        for g in r.logs:
            pr.logs.add(attempt=g.attempt, file_id=g.file_id, truncated=g.truncated)
        if r.exit_code is not None:
            pr.exit_code = r.exit_code
        _set_ts(pr.start_time, r.start_time)
        _set_ts(pr.finish_time, r.finish_time)
    for run in status.runs:
        prun = out.runs.add(name=run.name, state=run.state)
        _set_ts(prun.schedule_time, run.schedule_time)
    return out


def with_outputs(replica: Replica, file_ids: tuple[str, ...]) -> Replica:
    """The replica with its outputs recorded as collected."""
    return replace(replica, output_file_ids=file_ids, outputs_collected=True)
