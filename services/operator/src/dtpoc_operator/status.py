"""The status rules: previous status + observation + collected outputs -> new status.

Pure functions, shared by both runtimes, so that "what the status says"
never depends on where the replicas ran. The rules, in words:

- A replica's entry comes from the observation while its run is live; once
  an entry is final (succeeded, or failed for good) it never goes back, and
  its output file ids are never dropped - unless a later attempt of the
  replica (a retry) is observed: that attempt's entry replaces it, outputs
  and all.
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
from dataclasses import dataclass, replace

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
        if before is not None and before.attempt > seen.attempt:
            continue
        if before is not None and before.final and before.attempt == seen.attempt:
            continue
        merged = seen
        if before is not None and before.attempt == seen.attempt:
            merged = replace(
                merged,
                output_file_ids=before.output_file_ids,
                outputs_collected=before.outputs_collected,
                logs=before.logs,
                start_time=before.start_time or merged.start_time,
            )
        elif before is not None:
            merged = replace(merged, logs=before.logs)  # the earlier attempts' stored logs
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
        members = [r for r in replicas.values() if r.run == run.name]
        # A retried run (a replica at a later attempt) is what its replicas say: running
        # again until they end, then succeeded or failed, whatever its first Job said.
        retried = any(r.attempt > 1 for r in members)
        if retried or run.state not in FINAL_REPLICA_STATES:
            if members and all(r.final for r in members):
                state = (
                    ReplicaState.FAILED
                    if any(r.state == ReplicaState.FAILED for r in members)
                    else (ReplicaState.SUCCEEDED)
                )
                run = replace(run, state=state)
            elif retried:
                run = replace(run, state=ReplicaState.RUNNING)
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


@dataclass(frozen=True)
class _View:
    """One service's replicas and runs as the status rules read them."""

    spec: ServiceSpec
    previous: Status
    observation: Observation
    replicas: list[Replica]
    runs: list[Run]
    now: dt.datetime

    @property
    def active(self) -> int:
        return sum(1 for r in self.replicas if r.state == ReplicaState.RUNNING)

    @property
    def succeeded(self) -> int:
        return sum(1 for r in self.replicas if r.state == ReplicaState.SUCCEEDED)

    @property
    def failed(self) -> list[Replica]:
        return [r for r in self.replicas if r.state == ReplicaState.FAILED]

    @property
    def final(self) -> list[Replica]:
        return [r for r in self.replicas if r.final]

    @property
    def uncollected(self) -> list[Replica]:
        return [r for r in self.final if not r.outputs_collected]

    @property
    def started(self) -> bool:
        return any(r.start_time or r.state != ReplicaState.PENDING for r in self.replicas)

    @property
    def waiting(self) -> tuple[str, str]:
        return self.observation.waiting or ("", "")

    def failures(self) -> str:
        return _describe_failures(self.failed, scheduled=self.spec.job_type == JobType.SCHEDULED)

    def condition(self, type_: str, *, status: bool, reason: str, message: str = "") -> Condition:
        return _condition(
            self.previous, type_=type_, status=status, reason=reason, message=message, now=self.now
        )


class _Rules:
    """What the status says of a service whose replicas keep running (persistent,
    and any job type the runtime refused, which never gets this far with replicas)."""

    def total(self, view: _View) -> int:
        return view.spec.reps

    def all_final(self, view: _View) -> bool:
        """Every replica finished: only a service that runs to completion gets there."""
        return False

    def progress(self, view: _View) -> tuple[Phase, str]:
        ready = view.observation.ready
        return (
            Phase.RUNNING if ready else Phase.PENDING,
            "available" if ready else "waiting to become available",
        )

    def readiness(self, view: _View) -> tuple[bool, str]:
        ready = view.observation.ready
        return ready, "Available" if ready else view.waiting[0] or "Pending"

    def extra_conditions(self, view: _View) -> list[Condition]:
        return []


class _Persistent(_Rules):
    def total(self, view: _View) -> int:
        return 1


class _Scheduled(_Rules):
    def total(self, view: _View) -> int:
        return view.spec.reps * len(view.runs)

    def progress(self, view: _View) -> tuple[Phase, str]:
        runs = view.runs
        message = (
            f"{len(runs)} runs, latest {runs[0].name} {runs[0].state}"
            if runs
            else f"waiting for the first run (schedule {view.spec.schedule!r})"
        )
        if view.failed:
            message += f"; failed: {view.failures()}"
        return Phase.RUNNING if runs else Phase.PENDING, message

    def readiness(self, view: _View) -> tuple[bool, str]:
        ready = view.observation.ready
        return ready, "Scheduled" if ready else view.waiting[0] or "Pending"


class _Ondemand(_Rules):
    def all_final(self, view: _View) -> bool:
        return len(view.final) >= view.spec.reps

    def progress(self, view: _View) -> tuple[Phase, str]:
        all_final, failed = self.all_final(view), len(view.failed)
        if all_final and not view.uncollected:
            phase = Phase.SUCCEEDED if failed == 0 else Phase.FAILED
        elif view.started or view.final:
            phase = Phase.RUNNING
        else:
            phase = Phase.PENDING
        message = f"{view.succeeded} of {view.spec.reps} replicas succeeded"
        if failed:
            message += f", {failed} failed ({view.failures()})"
        if view.active:
            message += f", {view.active} running"
        if all_final and view.uncollected:
            message += f"; collecting the outputs of {len(view.uncollected)} replicas"
        return phase, message

    def readiness(self, view: _View) -> tuple[bool, str]:
        all_final = self.all_final(view)
        ready = view.active > 0 or all_final
        reason = "Finished" if all_final else "Running" if ready else view.waiting[0] or "Pending"
        return ready, reason

    def extra_conditions(self, view: _View) -> list[Condition]:
        complete = self.all_final(view) and not view.failed
        reason = "AllReplicasSucceeded" if complete else "NotFinished"
        return [view.condition(COMPLETE, status=complete, reason=reason)]


_RULES: dict[str, _Rules] = {
    JobType.ONDEMAND: _Ondemand(),
    JobType.SCHEDULED: _Scheduled(),
    JobType.PERSISTENT: _Persistent(),
}


def _rules(job_type: str) -> _Rules:
    return _RULES.get(job_type, _Rules())


def _ordered(
    spec: ServiceSpec,
    *,
    previous: Status,
    observation: Observation,
    entries: dict[tuple[str, int], Replica],
    max_runs: int,
) -> tuple[list[Replica], list[Run]]:
    """Replicas in display order, and a scheduled service's newest ``max_runs`` runs."""
    if spec.job_type != JobType.SCHEDULED:
        return sorted(entries.values(), key=lambda r: (-1, r.run, r.index)), []
    runs = _merge_runs(previous.runs, observation.runs, entries)
    kept = {r.name for r in runs[:max_runs]}
    # Entries of runs beyond the cap go, unless their outputs are still to collect.
    entries = {
        k: r for k, r in entries.items() if r.run in kept or not (r.final and r.outputs_collected)
    }
    runs = runs[:max_runs]
    order = {r.name: i for i, r in enumerate(reversed(runs))}
    replicas = sorted(entries.values(), key=lambda r: (order.get(r.run, -1), r.run, r.index))
    return replicas, runs


def _problem_conditions(view: _View, reason: str, problem: str) -> list[Condition]:
    return [
        view.condition(READY, status=False, reason=reason, message=problem),
        view.condition(FAILED_CONDITION, status=True, reason=reason, message=problem),
    ]


def _progress_conditions(view: _View, rules: _Rules) -> list[Condition]:
    ready, ready_reason = rules.readiness(view)
    failed = view.failed
    return [
        view.condition(
            READY, status=ready, reason=ready_reason, message="" if ready else view.waiting[1]
        ),
        *rules.extra_conditions(view),
        view.condition(
            FAILED_CONDITION,
            status=bool(failed),
            reason=(failed[-1].reason or "Failed") if failed else "NoFailures",
            message=view.failures(),
        ),
    ]


def _with_waiting(message: str, view: _View) -> str:
    reason, detail = view.waiting
    if not reason:
        return message
    return f"{message}; {reason}: {detail}" if detail else f"{message}; {reason}"


def _outputs_condition(view: _View, rules: _Rules) -> Condition:
    uncollected = view.uncollected
    collected_all = not uncollected and (
        rules.all_final(view) or view.spec.job_type != JobType.ONDEMAND
    )
    reason = (
        "AllCollected" if collected_all else "Collecting" if uncollected else "WaitingForReplicas"
    )
    message = f"{len(uncollected)} finished replicas not collected yet" if uncollected else ""
    return view.condition(OUTPUTS_COLLECTED, status=collected_all, reason=reason, message=message)


def compute_status(
    *,
    spec: ServiceSpec,
    generation: int,
    previous: Status,
    observation: Observation,
    collected: Mapping[tuple[str, int], tuple[str, ...]],
    now: dt.datetime,
    terminating: bool = False,
    max_runs: int = 20,
) -> Status:
    """The new status of one service (see the module rules): merge the replicas,
    order them, then let the job type's rules say phase, message and conditions."""
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
    replicas, runs = _ordered(
        spec, previous=previous, observation=observation, entries=entries, max_runs=max_runs
    )
    view = _View(
        spec=spec, previous=previous, observation=observation, replicas=replicas, runs=runs, now=now
    )
    rules = _rules(spec.job_type)
    if observation.problem is not None:
        reason, problem = observation.problem
        phase, message = Phase.FAILED, problem
        conditions = _problem_conditions(view, reason, problem)
    else:
        phase, message = rules.progress(view)
        message = _with_waiting(message, view)
        conditions = _progress_conditions(view, rules)
    conditions.append(_outputs_condition(view, rules))

    starts = [r.start_time for r in replicas if r.start_time is not None]
    completion_time = None
    if phase in (Phase.SUCCEEDED, Phase.FAILED):
        completion_time = previous.completion_time or now
    return Status(
        phase=phase,
        observed_generation=generation,
        conditions=tuple(conditions),
        replicas=tuple(replicas),
        active=view.active,
        succeeded=view.succeeded,
        failed=len(view.failed),
        total=rules.total(view),
        message=message,
        start_time=previous.start_time or (min(starts) if starts else None),
        completion_time=completion_time,
        runs=tuple(runs),
        suspended=observation.suspended,
    )


def to_collect(status: Status) -> list[Replica]:
    """Final replicas whose outputs are not in Files yet."""
    return [r for r in status.replicas if r.final and not r.outputs_collected]
