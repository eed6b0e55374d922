"""The reconciler: one service's desired state -> workload -> status -> outputs in Files.

Shared by both runtimes; only the adapters differ (:mod:`dtpoc_operator.ports`).
Every call reads the current state and converges, so it may run any number
of times, after any crash, and do no harm (level-triggered, idempotent).

The order of work is the crash-safety argument:

1. finalizer first (Kubernetes), so a deletion always waits for step 5 below;
2. workload created/patched (children have deterministic names, so a
   restart finds them instead of creating twins), then observed;
3. outputs of replicas that finished are uploaded to Files, and so are
   the logs of their attempts (:mod:`dtpoc_operator.logstore`);
4. the new status, holding their file ids (logs apart from outputs), is written;
5. only then the local copies are deleted.

A crash between 3 and 4 re-uploads next time (Files answers the same ids:
content is deduplicated by SHA-256). A crash between 4 and 5 leaves copies
that are already recorded; they are uploaded again (same ids) and deleted.

Terminating (a deletion): the workload is observed one last time (so that
replicas that finished are recorded as such), stopped, given
``terminate_grace_seconds`` to stop, then every replica folder is collected
(partial outputs of replicas that were stopped too), the final status
written, and the deletion let through. Once the grace is over the workload
is killed and collected without waiting for the kill to be confirmed, so a
node that never answers cannot hold a terminate forever; the collector
walks folders without following links, so a replica still running then can
at worst leave files behind.

Which folder is a replica's: the attempt its status entry names
(``podName``) for ondemand and scheduled services, whose retries write to
folders of their own (:mod:`dtpoc_operator.layout`); the other attempts'
folders are removed with the collected copies. Nothing a folder holds makes
collection fail (:mod:`dtpoc_operator.collector`): what cannot be stored is
named in the replica's status message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from dtpoc_common import analytics
from dtpoc_common import logging as dlog
from dtpoc_common.vocabulary import JobType, Phase
from dtpoc_operator import collector as collector_mod
from dtpoc_operator import layout, logstore, metrics, model, ports, status
from dtpoc_operator.model import (
    AnalyticsResource,
    Observation,
    Replica,
    ReplicaLog,
    ServiceKey,
    Status,
)

log = dlog.get_logger(__name__)

#: Seconds between checks while a terminated service's replicas are stopping.
STOP_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class ReconcilerOptions:
    terminate_grace_seconds: float = 30.0
    status_max_runs: int = 20


class Reconciler:
    """Reconciles one service per call; see the module docs for the order of work."""

    def __init__(
        self,
        *,
        store: ports.AnalyticsStore,
        runtime: ports.Runtime,
        collector: collector_mod.OutputCollector,
        options: ReconcilerOptions,
        book: metrics.StateBook | None = None,
        clock: Callable[[], dt.datetime] = model.utcnow,
        log_store: logstore.LogStore | None = None,
    ) -> None:
        self._log_store = log_store
        self._store = store
        self._runtime = runtime
        self._collector = collector
        self._options = options
        self._book = book or metrics.StateBook()
        self._clock = clock
        #: Replica folders checked since this process started (see _cleanup_candidates).
        self._verified: set[tuple[str, str, int]] = set()

    async def reconcile(self, key: ServiceKey) -> float | None:
        """Reconcile ``key``; returns seconds after which to look again, if any."""
        with metrics.RECONCILE_SECONDS.time():
            resource = await self._store.get(key)
            if resource is None:
                self._book.forget(str(key))
                metrics.RECONCILES.labels(result="gone").inc()
                return None
            if resource.deleting:
                delay = await self._terminate(resource)
            else:
                delay = await self._converge(resource)
            metrics.RECONCILES.labels(result="ok").inc()
            return delay

    # --- a live service ----------------------------------------------------------------------

    async def _converge(self, resource: AnalyticsResource) -> float | None:
        resource = await self._store.ensure_finalizer(resource)
        problem = self._runtime.problem(resource)
        requeue_after: float | None = None
        if problem is not None:
            observation = Observation(problem=problem)
        elif _finished_ondemand(resource):
            # Nothing can change any more: skip the workload (its Job may even be
            # gone by TTL); _record still checks for copies left by a crash.
            observation = Observation(live_runs=frozenset({resource.service_id}))
        else:
            previous = resource.status
            allow_create = not previous.replicas and previous.phase not in (
                Phase.SUCCEEDED,
                Phase.FAILED,
            )
            result = await self._runtime.sync(resource, allow_create=allow_create)
            if result.status_can_wait and not resource.status.replicas:
                return result.requeue_after
            observation = result.observation
            requeue_after = result.requeue_after
        await self._record(resource, observation, terminating=False)
        return requeue_after

    # --- a service being terminated ----------------------------------------------------------

    async def _terminate(self, resource: AnalyticsResource) -> float | None:
        now = self._clock()
        deleted_at = resource.deletion_time or now
        grace_over = (now - deleted_at).total_seconds() >= self._options.terminate_grace_seconds
        observation = await self._runtime.observe(resource)
        if observation.live_runs:
            # Record what finished before stopping, so that it is not called terminated.
            resource = await self._record(resource, observation, terminating=False)
        stopped = await self._runtime.stop(resource, force=grace_over)
        if not stopped:
            log.info("waiting for replicas to stop", service_id=resource.service_id)
            return STOP_POLL_SECONDS
        observation = await self._runtime.observe(resource)
        await self._record(resource, observation, terminating=True)
        await self._runtime.forget(resource)
        await self._store.finish_deletion(resource)
        self._book.forget(str(resource.key))
        log.info("service terminated", service_id=resource.service_id)
        return None

    # --- status and outputs ------------------------------------------------------------------

    async def _record(
        self, resource: AnalyticsResource, observation: Observation, *, terminating: bool
    ) -> AnalyticsResource:
        """Compute the status, collect finished outputs, write, then delete local copies."""
        spec = resource.spec
        now = self._clock()

        def compute(
            collected: dict[tuple[str, int], tuple[tuple[str, ...], str]],
        ) -> Status:
            new = status.compute_status(
                spec=spec,
                generation=resource.generation,
                previous=resource.status,
                observation=observation,
                collected={k: ids for k, (ids, _note) in collected.items()},
                now=now,
                terminating=terminating,
                max_runs=self._options.status_max_runs,
            )
            return _with_notes(new, {k: note for k, (_ids, note) in collected.items() if note})

        draft = compute({})
        candidates = status.to_collect(draft) + self._cleanup_candidates(resource, draft)
        results, logs = await self._collect(resource, candidates)
        collected = {
            key: (_merge_ids(_recorded(draft, key), outcome.file_ids), outcome.note)
            for key, (outcome, _folder) in results.items()
        }
        final = _with_logs(compute(collected) if collected else draft, logs)
        if _status_dict(final) != _status_dict(resource.status):
            await self._store.write_status(resource, final)
        for outcome, folder in results.values():
            await asyncio.to_thread(_remove_local_copies, resource, folder, outcome)
        for key in results:
            self._verified.add((resource.service_id, *key))
        self._book.record(
            str(resource.key),
            phase=final.phase,
            replica_states=_count_states(final.replicas),
        )
        return _with_status(resource, final)

    def _cleanup_candidates(self, resource: AnalyticsResource, draft: Status) -> list[Replica]:
        """Collected replicas whose folder still exists (a crash between status write
        and deletion): collected again, which answers the same ids, then deleted.
        Checked once per replica per process lifetime."""
        found = []
        for replica in draft.replicas:
            marker = (resource.service_id, replica.run, replica.index)
            if not replica.outputs_collected or marker in self._verified:
                continue
            folder = self._runtime.output_folder(resource, run=replica.run, index=replica.index)
            if folder.exists():
                found.append(replica)
            else:
                self._verified.add(marker)
        return found

    async def _store_logs(
        self, resource: AnalyticsResource, replica: Replica
    ) -> tuple[ReplicaLog, ...]:
        if self._log_store is None or any(g.attempt == replica.attempt for g in replica.logs):
            return ()
        found = await self._runtime.attempt_logs(resource, replica)
        if not found:
            return ()
        return await self._log_store.store(
            service_id=resource.service_id, replica=replica, logs=found
        )

    async def _collect(
        self, resource: AnalyticsResource, replicas: list[Replica]
    ) -> tuple[
        dict[tuple[str, int], tuple[collector_mod.Collected, Path]],
        dict[tuple[str, int], tuple[ReplicaLog, ...]],
    ]:
        logs: dict[tuple[str, int], tuple[ReplicaLog, ...]] = {}

        async def one(replica: Replica) -> tuple[Replica, collector_mod.Collected, Path]:
            stored_logs = await self._store_logs(resource, replica)
            if stored_logs:
                logs[replica.key] = stored_logs
            folder = self._runtime.output_folder(resource, run=replica.run, index=replica.index)
            counting = _counting_attempt(resource, replica, folder)
            if counting is None:
                log.warning(
                    "no attempt to collect: the replica names no pod",
                    service_id=resource.service_id,
                    replica_index=replica.index,
                )
                return replica, collector_mod.Collected.nothing(), folder
            outcome = await self._collector.collect(
                counting,
                service_id=resource.service_id,
                replica_index=replica.index,
                run=replica.run,
            )
            return replica, outcome, folder

        results: dict[tuple[str, int], tuple[collector_mod.Collected, Path]] = {}
        errors: list[BaseException] = []
        answers = await asyncio.gather(*(one(r) for r in replicas), return_exceptions=True)
        for answer in answers:
            if isinstance(answer, collector_mod.CollectError):
                errors.append(answer)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                replica, outcome, folder = answer
                results[replica.key] = (outcome, folder)
        if errors and not results:
            raise errors[0]
        if errors:
            log.warning(
                "some outputs could not be collected yet",
                service_id=resource.service_id,
                error=str(errors[0]),
            )
        return results, {k: v for k, v in logs.items() if k in results}


def _counting_attempt(resource: AnalyticsResource, replica: Replica, folder: Path) -> Path | None:
    """The folder of the attempt whose outputs are the replica's (see
    :mod:`dtpoc_operator.layout`): the one its status entry names."""
    if not layout.keeps_attempts_apart(resource.spec.job_type):
        return folder
    if not layout.is_plain_file_name(replica.pod_name):
        return None
    return layout.attempt_folder(folder, job_type=resource.spec.job_type, attempt=replica.pod_name)


def _remove_local_copies(
    resource: AnalyticsResource, folder: Path, outcome: collector_mod.Collected
) -> None:
    """After the status write: the collected copies, then the attempts that did not
    count (a failed try's partial files), then the emptied replica folder."""
    if outcome.folder is None:
        return  # nothing was collected: nothing is known to be a copy
    collector_mod.OutputCollector.remove_uploaded(outcome.folder, outcome)
    if outcome.folder != folder:
        collector_mod.OutputCollector.remove_other_attempts(folder, keep=outcome.folder.name)


def _finished_ondemand(resource: AnalyticsResource) -> bool:
    current = resource.status
    return (
        resource.spec.job_type == JobType.ONDEMAND
        and current.phase in (Phase.SUCCEEDED, Phase.FAILED)
        and current.observed_generation == resource.generation
        and bool(current.replicas)
        and all(r.final and r.outputs_collected for r in current.replicas)
    )


def _recorded(status_: Status, key: tuple[str, int]) -> tuple[str, ...]:
    for replica in status_.replicas:
        if replica.key == key and replica.outputs_collected:
            return replica.output_file_ids
    return ()


def _merge_ids(recorded: tuple[str, ...], fresh: tuple[str, ...]) -> tuple[str, ...]:
    merged = list(recorded)
    merged.extend(i for i in fresh if i not in recorded)
    return tuple(merged)


def _with_notes(status_: Status, notes: dict[tuple[str, int], str]) -> Status:
    if not notes:
        return status_
    replicas = tuple(
        replace(r, message=f"{r.message}; {notes[r.key]}" if r.message else notes[r.key])
        if r.key in notes and notes[r.key] not in r.message
        else r
        for r in status_.replicas
    )
    return replace(status_, replicas=replicas)


def _with_logs(status_: Status, logs: dict[tuple[str, int], tuple[ReplicaLog, ...]]) -> Status:
    """The status with each replica's newly stored logs, by attempt."""
    if not logs:
        return status_
    replicas = []
    for replica in status_.replicas:
        fresh = logs.get(replica.key)
        if fresh:
            by_attempt = {g.attempt: g for g in (*replica.logs, *fresh)}
            replica = replace(replica, logs=tuple(by_attempt[a] for a in sorted(by_attempt)))
        replicas.append(replica)
    return replace(status_, replicas=tuple(replicas))


def _with_status(resource: AnalyticsResource, new: Status) -> AnalyticsResource:
    return replace(resource, status=new)


def _status_dict(status_: Status) -> dict[str, object]:
    return analytics.status_to_dict(model.status_to_proto(status_))


def _count_states(replicas: tuple[Replica, ...]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for replica in replicas:
        counts[replica.state] = counts.get(replica.state, 0) + 1
    return counts
