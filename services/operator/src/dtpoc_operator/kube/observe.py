"""Replica states from Jobs and pods (pure functions over API objects).

Where the truth comes from:

- "failed for good" and "succeeded" come from the Job's ``completedIndexes``
  and ``failedIndexes`` (so retries under ``backoffLimitPerIndex`` are not
  failures yet), and from its ``Failed`` condition (``DeadlineExceeded``:
  every unfinished index fails with that reason);
- the details (pod name, times, exit code, reason, message) come from the
  newest pod of each index (annotation
  ``batch.kubernetes.io/job-completion-index``): its analytics container's
  ``terminated`` state (``Error``, ``OOMKilled``...), a failed init container
  (``InputFetchFailed`` with the fetcher's message), or a ``waiting`` reason
  (``ErrImagePull``, ``ImagePullBackOff``...) while the replica is pending.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from dtpoc_common.vocabulary import ReplicaState
from dtpoc_operator.kube import manifests
from dtpoc_operator.model import Replica, Run

Obj = dict[str, Any]

#: Waiting reasons worth showing: the replica cannot start until someone acts.
WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "CrashLoopBackOff",
        "RunContainerError",
    }
)
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    text = str(value).replace("Z", "+00:00")
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def parse_indexes(text: str | None) -> set[int]:
    """``"0,2-4"`` -> ``{0, 2, 3, 4}`` (the Job status index-set format)."""
    result: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            low, high = part.split("-", 1)
            result.update(range(int(low), int(high) + 1))
        else:
            result.add(int(part))
    return result


def condition(obj: Obj, type_: str) -> Obj | None:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == type_ and item.get("status") == "True":
            return dict(item)
    return None


def completion_index(pod: Obj) -> int | None:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(
        manifests.COMPLETION_INDEX_ANNOTATION
    )
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _container_status(pod: Obj, name: str, *, init: bool = False) -> Obj:
    key = "initContainerStatuses" if init else "containerStatuses"
    for item in (pod.get("status") or {}).get(key) or []:
        if item.get("name") == name:
            return dict(item)
    return {}


def pod_details(pod: Obj, *, run: str, index: int) -> Replica:
    """What one pod says about its replica; ``state`` from the pod phase alone."""
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    main = _container_status(pod, manifests.MAIN_CONTAINER)
    state = main.get("state") or {}
    running = state.get("running") or {}
    terminated = state.get("terminated") or {}
    waiting = state.get("waiting") or {}
    init = _container_status(pod, manifests.INIT_CONTAINER, init=True)
    init_state = init.get("state") or {}
    init_terminated = init_state.get("terminated") or {}
    init_waiting = init_state.get("waiting") or {}

    start = parse_time(running.get("startedAt") or terminated.get("startedAt"))
    finish = parse_time(terminated.get("finishedAt"))
    exit_code = terminated.get("exitCode")
    reason = ""
    message = ""
    if terminated and exit_code not in (None, 0):
        reason = str(terminated.get("reason") or "Error")
        message = str(terminated.get("message") or "")
    elif init_terminated and init_terminated.get("exitCode") not in (None, 0):
        exit_code = init_terminated.get("exitCode")
        reason = "InputFetchFailed"
        message = str(init_terminated.get("message") or "fetching the input files failed")
        finish = finish or parse_time(init_terminated.get("finishedAt"))
    elif waiting.get("reason") in WAITING_REASONS or init_waiting.get("reason") in WAITING_REASONS:
        source = waiting if waiting.get("reason") in WAITING_REASONS else init_waiting
        reason = str(source.get("reason"))
        message = str(source.get("message") or "")
    elif phase == "Failed":
        reason = str(status.get("reason") or "Failed")
        message = str(status.get("message") or "")
    state_name = {
        "Pending": ReplicaState.PENDING,
        "Running": ReplicaState.RUNNING,
        "Succeeded": ReplicaState.SUCCEEDED,
        "Failed": ReplicaState.FAILED,
    }.get(phase, ReplicaState.PENDING)
    return Replica(
        run=run,
        index=index,
        state=state_name,
        start_time=start,
        finish_time=finish,
        exit_code=int(exit_code) if exit_code is not None else None,
        reason=reason,
        message=message[:1024],
        pod_name=str((pod.get("metadata") or {}).get("name") or ""),
    )


def _attempt_order(pod: Obj) -> tuple[bool, str]:
    succeeded = (pod.get("status") or {}).get("phase") == "Succeeded"
    return succeeded, str((pod.get("metadata") or {}).get("creationTimestamp") or "")


def newest_by_index(pods: Iterable[Obj]) -> dict[int, Obj]:
    """The attempt that counts for each index: the pod that succeeded (an index
    succeeds once), else the newest. Its name is the replica's ``podName``, which
    names the attempt folder the collector takes (:mod:`dtpoc_operator.layout`)."""
    latest: dict[int, Obj] = {}
    for pod in pods:
        index = completion_index(pod)
        if index is None:
            continue
        current = latest.get(index)
        if current is None or _attempt_order(pod) >= _attempt_order(current):
            latest[index] = pod
    return latest


def job_replicas(job: Obj, pods: Iterable[Obj], *, run: str) -> list[Replica]:
    """Every replica of one Indexed Job (see module docs for the sources)."""
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    reps = int(spec.get("completions") or 0)
    completed = parse_indexes(status.get("completedIndexes"))
    failed = parse_indexes(status.get("failedIndexes"))
    job_failed = condition(job, "Failed")
    latest = newest_by_index(pods)
    result = []
    for index in range(reps):
        pod = latest.get(index)
        base = (
            pod_details(pod, run=run, index=index)
            if pod is not None
            else Replica(run=run, index=index, state=ReplicaState.PENDING)
        )
        if index in completed:
            replica = _succeeded(base)
        elif index in failed:
            replica = _failed(base, "Failed", "")
        elif job_failed is not None:
            # The Job's reason stands unless the pod itself failed with one of its own.
            replica = _failed(
                base,
                str(job_failed.get("reason") or "Failed"),
                str(job_failed.get("message") or ""),
                override=base.state != ReplicaState.FAILED,
            )
        elif base.state == ReplicaState.SUCCEEDED:
            # The Job controller has not counted it yet.
            replica = _replace_state(base, ReplicaState.RUNNING)
        elif base.state == ReplicaState.FAILED:
            replica = _retrying(base)
        else:
            replica = base
        result.append(replica)
    return result


def pods_still_coming(job: Obj, replicas: Iterable[Replica]) -> bool:
    """True while a Job has fewer pods than it runs at once and every replica is
    plainly pending (no pod started or ended, no waiting reason): the Job controller
    is still creating its pods, and nothing a status would say has changed yet."""
    spec = job.get("spec") or {}
    completions = int(spec.get("completions") or 0)
    parallelism = spec.get("parallelism")
    at_once = min(completions, int(parallelism)) if parallelism is not None else completions
    seen = list(replicas)
    plainly_pending = all(
        r.state == ReplicaState.PENDING and not r.reason and r.start_time is None for r in seen
    )
    return plainly_pending and sum(1 for r in seen if r.pod_name) < at_once


def pods_only_replicas(pods: Iterable[Obj], *, run: str) -> list[Replica]:
    """Replicas seen from pods alone (the Job is gone): a terminal pod is final."""
    return [pod_details(pod, run=run, index=i) for i, pod in sorted(newest_by_index(pods).items())]


def _replace_state(replica: Replica, state: str) -> Replica:
    return replace(replica, state=state)


def _succeeded(base: Replica) -> Replica:
    """An index the Job counts as completed: its pod's times and name, no failure text,
    exit code 0 unless the pod said otherwise."""
    return replace(
        base,
        state=ReplicaState.SUCCEEDED,
        exit_code=0 if base.exit_code is None else base.exit_code,
        reason="",
        message="",
    )


def _retrying(base: Replica) -> Replica:
    """An attempt that failed while the Job will run the index again: pending, not
    finished, the attempt's failure kept in the reason and message."""
    return replace(
        base,
        state=ReplicaState.PENDING,
        finish_time=None,
        message=f"attempt failed; retrying. {base.message}".strip(),
    )


def _failed(base: Replica, reason: str, message: str, *, override: bool = False) -> Replica:
    own = base.reason and not override
    return replace(
        base,
        state=ReplicaState.FAILED,
        reason=base.reason if own else reason,
        message=base.message if own else (message or base.message),
    )


def run_of(job: Obj) -> Run:
    """A scheduled service's run for one of its Jobs."""
    meta = job.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    scheduled = parse_time(annotations.get(SCHEDULED_TIMESTAMP_ANNOTATION)) or parse_time(
        meta.get("creationTimestamp")
    )
    if condition(job, "Complete") is not None:
        state = ReplicaState.SUCCEEDED
    elif condition(job, "Failed") is not None:
        state = ReplicaState.FAILED
    else:
        state = ReplicaState.RUNNING
    return Run(name=str(meta.get("name")), schedule_time=scheduled, state=state)


def waiting_of(replicas: Iterable[Replica]) -> tuple[str, str] | None:
    """The first "cannot start" reason among pending replicas, for the service message."""
    for replica in replicas:
        if replica.state == ReplicaState.PENDING and replica.reason in WAITING_REASONS:
            where = f"replica {replica.index}"
            return replica.reason, f"{where}: {replica.message}".rstrip(": ")
    return None
