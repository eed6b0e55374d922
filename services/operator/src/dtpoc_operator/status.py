"""The status rules: previous status + observation + collected outputs -> new status.

Pure functions, shared by both runtimes, so that "what the status says"
never depends on where the replicas ran. The rules, in words:

- A replica's entry comes from the observation while its run is live; once
  an entry is final (succeeded, or failed for good) it never goes back, and
  its output file ids are never dropped.
- An entry whose run disappeared before the replica finished is failed with
  reason ``WorkloadDeleted`` (or ``Terminated`` while the service is being
  terminated): the status does not pretend it is still running.
- An ondemand service is ``succeeded`` when every replica succeeded *and* its
  outputs are collected, ``failed`` when every replica is final, one failed
  for good, and outputs are collected; ``running`` once anything started,
  ``pending`` before. A scheduled service is ``running`` once it has a run;
  a persistent one once it is available. ``terminated`` is the
  orchestrator's to write, never the operator's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import replace

from dtpoc_common.vocabulary import FINAL_REPLICA_STATES, JobType, Phase, ReplicaState
from dtpoc_operator import model
from dtpoc_operator.model import Condition, Observation, Replica, Run, ServiceSpec, Status

READY = "Ready"
COMPLETE = "Complete"
FAILED_CONDITION = "Failed"
OUTPUTS_COLLECTED = "OutputsCollected"

REASON_TERMINATED = "Terminated"
REASON_WORKLOAD_DELETED = "WorkloadDeleted"


def merge_replicas(
    *,
    previous: Iterable[Replica],
    observed: Iterable[Replica],
    live_runs: frozenset[str],
    terminating: bool,
    now: dt.datetime,
) -> dict[tuple[str, int], Replica]:
    """Previous entries updated by the observation (see the module rules)."""
    entries = {r.key: r for r in previous}
    for seen in observed:
        before = entries.get(seen.key)
        if before is not None and before.final:
            continue
        merged = seen
        if before is not None:
            merged = replace(
                merged,
                output_file_ids=before.output_file_ids,
                outputs_collected=before.outputs_collected,
                start_time=before.start_time or merged.start_time,
            )
        entries[seen.key] = merged
    for key, entry in list(entries.items()):
        if entry.final:
            continue
        if terminating:
            entries[key] = replace(
                entry,
                state=ReplicaState.FAILED,
                reason=REASON_TERMINATED,
                message=entry.message or "the service was terminated before this replica finished",
                finish_time=entry.finish_time or now,
            )
        elif entry.run not in live_runs:
            entries[key] = replace(
                entry,
                state=ReplicaState.FAILED,
                reason=REASON_WORKLOAD_DELETED,
                message="the replica's workload disappeared before it finished",
                finish_time=entry.finish_time or now,
            )
    return entries


def _condition(
    previous: Status, *, type_: str, status: bool, reason: str, message: str, now: dt.datetime
) -> Condition:
    value = "True" if status else "False"
    before = previous.condition(type_)
    since = (
        before.last_transition_time
        if before is not None and before.status == value and before.last_transition_time
        else now
    )
    return Condition(
        type=type_, status=value, reason=reason, message=message, last_transition_time=since
    )


def _merge_runs(
    previous: Iterable[Run], observed: Iterable[Run], replicas: Mapping[tuple[str, int], Replica]
) -> list[Run]:
    runs = {r.name: r for r in previous}
    for run in observed:
        before = runs.get(run.name)
        if before is not None and before.state in FINAL_REPLICA_STATES:
            continue
        runs[run.name] = run
    result = []
    for run in runs.values():
        if run.state not in FINAL_REPLICA_STATES:
            members = [r for r in replicas.values() if r.run == run.name]
            if members and all(r.final for r in members):
                state = (
                    ReplicaState.FAILED
                    if any(r.state == ReplicaState.FAILED for r in members)
                    else (ReplicaState.SUCCEEDED)
                )
                run = replace(run, state=state)
        result.append(run)
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(result, key=lambda r: (r.schedule_time or epoch, r.name), reverse=True)


def _describe_failures(failed: list[Replica], *, scheduled: bool) -> str:
    parts = []
    for r in failed[:5]:
        where = f"{r.run}/{r.index}" if scheduled else str(r.index)
        detail = r.reason or "Failed"
        if r.exit_code is not None:
            detail += f", exit code {r.exit_code}"
        parts.append(f"replica {where}: {detail}" + (f" ({r.message})" if r.message else ""))
    if len(failed) > 5:
        parts.append(f"and {len(failed) - 5} more")
    return "; ".join(parts)


def compute_status(
    *,
    spec: ServiceSpec,
    service_id: str,
    generation: int,
    previous: Status,
    observation: Observation,
    collected: Mapping[tuple[str, int], tuple[str, ...]],
    now: dt.datetime,
    terminating: bool = False,
    max_runs: int = 20,
) -> Status:
    """The new status of one service (see the module rules)."""
    entries = merge_replicas(
        previous=previous.replicas,
        observed=observation.replicas,
        live_runs=observation.live_runs,
        terminating=terminating,
        now=now,
    )
    for key, ids in collected.items():
        if key in entries:
            entries[key] = model.with_outputs(entries[key], ids)

    scheduled = spec.job_type == JobType.SCHEDULED
    runs: list[Run] = []
    if scheduled:
        runs = _merge_runs(previous.runs, observation.runs, entries)
        kept = {r.name for r in runs[:max_runs]}
        # Entries of runs beyond the cap go, unless their outputs are still to collect.
        entries = {
            k: r
            for k, r in entries.items()
            if r.run in kept or not (r.final and r.outputs_collected)
        }
        runs = runs[:max_runs]
        order = {r.name: i for i, r in enumerate(reversed(runs))}
    else:
        order = {}
    replicas = sorted(entries.values(), key=lambda r: (order.get(r.run, -1), r.run, r.index))

    active = sum(1 for r in replicas if r.state == ReplicaState.RUNNING)
    succeeded = sum(1 for r in replicas if r.state == ReplicaState.SUCCEEDED)
    failed_list = [r for r in replicas if r.state == ReplicaState.FAILED]
    failed = len(failed_list)
    if spec.job_type == JobType.PERSISTENT:
        total = 1
    elif scheduled:
        total = spec.reps * len(runs)
    else:
        total = spec.reps
    final = [r for r in replicas if r.final]
    uncollected = [r for r in final if not r.outputs_collected]
    all_final = spec.job_type == JobType.ONDEMAND and len(final) >= spec.reps
    started = any(r.start_time or r.state != ReplicaState.PENDING for r in replicas)

    conditions: list[Condition] = []
    message: str
    if observation.problem is not None:
        reason, problem = observation.problem
        phase = Phase.FAILED
        message = problem
        conditions.append(
            _condition(previous, type_=READY, status=False, reason=reason, message=problem, now=now)
        )
        conditions.append(
            _condition(
                previous,
                type_=FAILED_CONDITION,
                status=True,
                reason=reason,
                message=problem,
                now=now,
            )
        )
    else:
        failures = _describe_failures(failed_list, scheduled=scheduled)
        if spec.job_type == JobType.ONDEMAND:
            if all_final and not uncollected:
                phase = Phase.SUCCEEDED if failed == 0 else Phase.FAILED
            elif started or final:
                phase = Phase.RUNNING
            else:
                phase = Phase.PENDING
            message = f"{succeeded} of {spec.reps} replicas succeeded"
            if failed:
                message += f", {failed} failed ({failures})"
            if active:
                message += f", {active} running"
            if all_final and uncollected:
                message += f"; collecting the outputs of {len(uncollected)} replicas"
        elif scheduled:
            phase = Phase.RUNNING if runs else Phase.PENDING
            message = (
                f"{len(runs)} runs, latest {runs[0].name} {runs[0].state}"
                if runs
                else f"waiting for the first run (schedule {spec.schedule!r})"
            )
            if failed:
                message += f"; failed: {failures}"
        else:
            phase = Phase.RUNNING if observation.ready else Phase.PENDING
            message = "available" if observation.ready else "waiting to become available"
        waiting_reason, waiting_message = observation.waiting or ("", "")
        if waiting_reason:
            message += (
                f"; {waiting_reason}: {waiting_message}"
                if waiting_message
                else (f"; {waiting_reason}")
            )

        if spec.job_type == JobType.ONDEMAND:
            ready = active > 0 or all_final
            ready_reason = (
                "Finished" if all_final else "Running" if ready else waiting_reason or "Pending"
            )
        elif scheduled:
            ready = observation.ready
            ready_reason = "Scheduled" if ready else waiting_reason or "Pending"
        else:
            ready = observation.ready
            ready_reason = "Available" if ready else waiting_reason or "Pending"
        conditions.append(
            _condition(
                previous,
                type_=READY,
                status=ready,
                reason=ready_reason,
                message=waiting_message if not ready else "",
                now=now,
            )
        )
        if spec.job_type == JobType.ONDEMAND:
            complete = all_final and failed == 0
            conditions.append(
                _condition(
                    previous,
                    type_=COMPLETE,
                    status=complete,
                    reason="AllReplicasSucceeded" if complete else "NotFinished",
                    message="",
                    now=now,
                )
            )
        conditions.append(
            _condition(
                previous,
                type_=FAILED_CONDITION,
                status=bool(failed_list),
                reason=(failed_list[-1].reason or "Failed") if failed_list else "NoFailures",
                message=failures,
                now=now,
            )
        )
    collected_all = not uncollected and (all_final or spec.job_type != JobType.ONDEMAND)
    conditions.append(
        _condition(
            previous,
            type_=OUTPUTS_COLLECTED,
            status=collected_all,
            reason=(
                "AllCollected"
                if collected_all
                else "Collecting"
                if uncollected
                else "WaitingForReplicas"
            ),
            message=(
                f"{len(uncollected)} finished replicas not collected yet" if uncollected else ""
            ),
            now=now,
        )
    )

    starts = [r.start_time for r in replicas if r.start_time is not None]
    start_time = previous.start_time or (min(starts) if starts else None)
    completion_time = None
    if phase in (Phase.SUCCEEDED, Phase.FAILED):
        completion_time = previous.completion_time or now
    return Status(
        phase=phase,
        observed_generation=generation,
        conditions=tuple(conditions),
        replicas=tuple(replicas),
        active=active,
        succeeded=succeeded,
        failed=failed,
        total=total,
        message=message,
        start_time=start_time,
        completion_time=completion_time,
        runs=tuple(runs),
    )


def to_collect(status: Status) -> list[Replica]:
    """Final replicas whose outputs are not in Files yet."""
    return [r for r in status.replicas if r.final and not r.outputs_collected]
