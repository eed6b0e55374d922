"""The orchestrator's use cases, over its ports (records, AnalyticsStore, Files).

Launch, crash-safe without transactions (FerretDB has none):

1. validate the request (pure rules);
2. insert the record with ``state: creating`` - it reserves the service id
   and already counts as a user of its input files, so a file cannot be
   deleted between the existence check and the launch;
3. announce each mounted file to Files (``PrepareMount``): it answers
   NOT_FOUND for a missing file and takes a step in the file's change
   sequence, so a delete that checked the file's users before step 2 fails
   its compare-and-set and checks again, now seeing this record;
4. create the Analytics resource;
5. mark the record ``launched``.

If step 3 or 4 fails, the record is deleted (when the store could not say
whether the resource was written, its deletion is asked for first). If the
process dies between steps, a ``creating`` record is left behind; records
are never shown while ``creating``. Every list, get and usage query first
*settles* such records: one whose resource exists becomes ``launched``; one
older than ``creating_grace_seconds`` whose resource does not exist is
deleted. So neither a record without a resource nor a resource without a
record outlives a crash.

Terminate records first (``terminated_at`` plus a copy of the last status),
then deletes the resource. Terminating again repeats the (idempotent)
delete and answers the same, so a crash between the two is repaired by
retrying.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import errors
from dtpoc_common import logging as dlog
from dtpoc_common.vocabulary import FINAL_REPLICA_STATES, JobType, Phase, ReplicaState
from dtpoc_orchestrator import actions, desired, domain, logs, outputs, ports, status, validation

log = dlog.get_logger(__name__)

#: Status values a list may be filtered by (phases and overall statuses).
FILTER_VALUES = frozenset(
    {
        Phase.PENDING,
        Phase.RUNNING,
        Phase.SUCCEEDED,
        Phase.FAILED,
        Phase.TERMINATED,
        domain.STATUS_OK,
        domain.STATUS_ERROR,
    }
)
FILTER_BATCH = 200

TERMINATED_MESSAGE = "service {id} is terminated; its record and outputs are kept"


@dataclass(frozen=True)
class ServiceView:
    """A record with its status at one moment."""

    record: domain.ServiceRecord
    status: status.DerivedStatus
    #: The desired state says suspended (the resource's spec, else the record's).
    suspended: bool = False


@dataclass(frozen=True)
class ReplicaOutput:
    """What ``output/{idx}`` answers: the document, or the list of files."""

    idx: int
    files: list[domain.StoredFile]
    document: Any = None
    has_document: bool = False


@dataclass(frozen=True)
class ReplicaFiles:
    idx: int
    state: str
    files: list[domain.StoredFile]


@dataclass(frozen=True)
class FileUsage:
    active: list[str]
    terminated: list[str]


class Orchestrator:
    """Use cases over the ports; the gRPC servicer translates messages and calls these."""

    def __init__(
        self,
        *,
        records: ports.Records,
        analytics_store: ports.AnalyticsStore,
        files: ports.Files,
        ping_database: Callable[[], Any],
        creating_grace_seconds: float = 60.0,
        max_inline_output_bytes: int = 4 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
        local_containers: bool = False,
        expose_services: bool = False,
        live_logs: logs.LiveLogs | None = None,
    ) -> None:
        self._live_logs: logs.LiveLogs = live_logs or logs.NoLiveLogs()
        self._records = records
        self._local_containers = local_containers
        self._expose_services = expose_services
        self._store = analytics_store
        self._files = files
        self._ping_database = ping_database
        self._grace = creating_grace_seconds
        self._max_inline = max_inline_output_bytes
        self._clock = clock

    @property
    def backend(self) -> str:
        return self._store.backend

    async def healthz(self) -> str:
        await self._ping_database()
        return "ok"

    # --- launch ---------------------------------------------------------------

    async def launch(self, request: domain.LaunchRequest) -> str:
        """Validate, record, write the desired state; answer the new service id."""
        validation.validate_launch(
            request,
            backend=self._store.backend,
            local_containers=self._local_containers,
            expose_services=self._expose_services,
        )
        spec = desired.analytics_spec(request)
        return await self._launch_spec(spec, labels=dict(request.labels))

    async def _launch_spec(
        self, spec: analytics_pb2.AnalyticsSpec, *, labels: dict[str, str], resubmits: str = ""
    ) -> str:
        """Record, check the inputs, write the desired state (see the module docs)."""
        service_id = str(ObjectId())
        record = domain.ServiceRecord(
            id=service_id,
            state=domain.STATE_CREATING,
            created_at=self._clock(),
            spec=spec,
            labels=labels,
            namespace=self._store.namespace,
            backend=self._store.backend,
            resubmitted_from=resubmits,
        )
        await self._records.insert(record)
        try:
            await self._check_files_exist(spec.input_files)
        except errors.DomainError:
            await self._forget_record(service_id)
            raise
        try:
            await self._store.create(service_id=service_id, spec=spec, labels=labels)
        except errors.DomainError as exc:
            await self._undo_launch(service_id, exc)
            raise
        try:
            launched = await self._records.mark_launched(service_id)
        except errors.Unavailable:
            # Record (creating) and resource both exist: the next read settles it.
            log.warning(
                "launched, but the record stays creating until settled", service_id=service_id
            )
            launched = True
        if not launched:
            # The record was settled away (the launch outlived the grace period):
            # take the resource back so that neither exists alone.
            with contextlib.suppress(errors.DomainError):
                await self._store.delete(service_id)
            raise errors.Aborted("the launch took too long and was rolled back; launch again")
        log.info(
            "service launched",
            service_id=service_id,
            job_type=spec.job_type,
            image=f"{spec.image}:{spec.version}",
            reps=spec.reps,
            backend=self._store.backend,
            resubmitted_from=resubmits or None,
        )
        return service_id

    async def _check_files_exist(self, input_files: Any) -> None:
        async def check(file_id: str) -> None:
            try:
                await self._files.prepare_mount(file_id)
            except errors.NotFound:
                raise errors.NotFound(
                    f"file {file_id} does not exist in the files service", field="mount_files"
                ) from None

        results = await asyncio.gather(
            *(check(file_id) for file_id in sorted(input_files)), return_exceptions=True
        )
        # Report a missing file before an unreachable service: it is the caller's to fix.
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            if isinstance(failure, errors.NotFound):
                raise failure
        for failure in failures:
            raise failure

    async def _forget_record(self, service_id: str) -> None:
        try:
            await self._records.delete_creating(service_id)
        except errors.Unavailable:
            log.warning(
                "could not delete the record of a failed launch; settled later",
                service_id=service_id,
            )

    async def _undo_launch(self, service_id: str, failure: errors.DomainError) -> None:
        if isinstance(failure, errors.Unavailable):
            # The resource may have been written: ask for its deletion before the record
            # goes; if that cannot be done either, the record stays and is settled later.
            try:
                await self._store.delete(service_id)
            except errors.DomainError:
                log.warning(
                    "launch outcome unknown; record kept until settled", service_id=service_id
                )
                return
        log.warning(
            "launch failed; record removed", service_id=service_id, error=errors.describe(failure)
        )
        await self._forget_record(service_id)

    # --- settling records left "creating" --------------------------------------

    async def _settle(self, record: domain.ServiceRecord) -> domain.ServiceRecord | None:
        """A ``creating`` record resolved: launched, or None (hidden or removed)."""
        if record.state != domain.STATE_CREATING:
            return record
        resource = await self._store.get(record.id)
        if resource is not None and not resource.deleting:
            await self._records.mark_launched(record.id)
            log.info("creating record settled: launched", service_id=record.id)
            return record.replace(state=domain.STATE_LAUNCHED)
        expired = self._clock() - record.created_at > self._grace
        if resource is None and expired and await self._records.delete_creating(record.id):
            log.warning(
                "creating record settled: removed (launch never finished)", service_id=record.id
            )
        return None

    async def _settle_all(self) -> None:
        for record in await self._records.creating():
            await self._settle(record)

    async def _record(self, raw_id: str) -> domain.ServiceRecord:
        service_id = domain.parse_service_id(raw_id)
        record = await self._records.get(service_id)
        if record is not None:
            record = await self._settle(record)
        if record is None:
            raise errors.NotFound(f"no service {service_id}")
        return record

    # --- reading ----------------------------------------------------------------

    async def _view(
        self, record: domain.ServiceRecord, resource: domain.AnalyticsObject | None
    ) -> ServiceView:
        # Still being deleted: the operator may have said more; keep the latest.
        if (
            record.terminated
            and resource is not None
            and resource.has_status
            and record.last_status != resource.status
        ):
            await self._records.keep_last_status(record.id, resource.status)
            record = record.replace(last_status=resource.status)
        spec = resource.spec if resource is not None else record.spec
        return ServiceView(
            record=record, status=status.derive(record, resource), suspended=spec.suspend
        )

    async def get_service(self, raw_id: str) -> ServiceView:
        record = await self._record(raw_id)
        return await self._view(record, await self._store.get(record.id))

    async def list_services(
        self, *, skip: int, limit: int | None, status_filter: str = ""
    ) -> list[ServiceView]:
        skip, limit = validation.validate_page(skip=skip, limit=limit)
        wanted = status_filter.strip().lower()
        if wanted and wanted not in FILTER_VALUES:
            raise errors.InvalidArgument(
                f"must be one of {', '.join(sorted(FILTER_VALUES))}, got {status_filter!r}",
                field="status",
            )
        await self._settle_all()
        if not wanted:
            page = await self._records.page(skip=skip, limit=limit)
            return await self._views(page)
        views: list[ServiceView] = []
        matched = 0
        async for batch in self._records.batches(size=FILTER_BATCH):
            for view in await self._views(batch):
                if wanted not in (view.status.phase, view.status.status):
                    continue
                matched += 1
                if matched > skip:
                    views.append(view)
                    if len(views) == limit:
                        return views
        return views

    async def _views(self, records: Sequence[domain.ServiceRecord]) -> list[ServiceView]:
        resources = await self._store.get_many([r.id for r in records])
        return [await self._view(r, resources.get(r.id)) for r in records]

    async def get_status(self, raw_id: str) -> status.DerivedStatus:
        return (await self.get_service(raw_id)).status

    # --- outputs ------------------------------------------------------------------

    async def get_output(self, raw_id: str, idx: int) -> ReplicaOutput:
        view = await self.get_service(raw_id)
        replica = outputs.finished_replica(
            spec=view.record.spec, status=view.status.source, idx=idx
        )
        stored = await self._replica_files(view.record, replica)
        if not stored and not replica.outputs_collected and not replica.output_file_ids:
            raise errors.NotFound(
                f"replica {idx} has finished (state {replica.state}) but its outputs are not "
                "collected yet"
            )
        if len(stored) == 1 and stored[0].looks_like_json:
            content = await self._files.read(stored[0].file_id, max_bytes=self._max_inline)
            if content is not None:
                try:
                    document = outputs.parse_inline(content)
                except outputs.NotInline as exc:
                    log.info(
                        "output is not JSON that fits an answer; answering the file list",
                        service_id=view.record.id,
                        replica_index=idx,
                        reason=str(exc),
                    )
                else:
                    return ReplicaOutput(
                        idx=idx, files=stored, document=document, has_document=True
                    )
        return ReplicaOutput(idx=idx, files=stored)

    async def list_outputs(self, raw_id: str) -> list[ReplicaFiles]:
        view = await self.get_service(raw_id)
        source = view.status.source
        newest = outputs.newest_by_index(source)
        count = outputs.replica_count(view.record.spec, source)

        async def one(idx: int) -> ReplicaFiles:
            replica = newest.get(idx)
            if replica is None:
                return ReplicaFiles(idx=idx, state=ReplicaState.PENDING, files=[])
            files = await self._replica_files(view.record, replica)
            return ReplicaFiles(idx=idx, state=replica.state or ReplicaState.PENDING, files=files)

        return list(await asyncio.gather(*(one(i) for i in range(count))))

    async def _replica_files(
        self, record: domain.ServiceRecord, replica: analytics_pb2.ReplicaStatus
    ) -> list[domain.StoredFile]:
        """The replica's files: the ids its status lists, else what Files holds for it."""
        if replica.output_file_ids:

            async def info(file_id: str) -> domain.StoredFile | None:
                try:
                    return await self._files.get_info(file_id)
                except errors.NotFound:
                    log.warning(
                        "listed output file is gone",
                        service_id=record.id,
                        replica_index=replica.index,
                        file_id=file_id,
                    )
                    return None

            found = await asyncio.gather(*(info(i) for i in replica.output_file_ids))
            return [f for f in found if f is not None]
        if replica.state not in FINAL_REPLICA_STATES:
            return []
        stored = await self._files.replica_files(service_id=record.id, replica_index=replica.index)
        if record.spec.job_type == JobType.SCHEDULED and replica.run:
            stored = [f for f in stored if not f.run or f.run == replica.run]
        return sorted(stored, key=lambda f: f.path)

    # --- logs ---------------------------------------------------------------------

    async def replica_log(
        self, raw_id: str, idx: int, query: logs.LogQuery
    ) -> AsyncIterator[logs.LogChunk]:
        """One attempt's log of replica ``idx`` (see :mod:`dtpoc_orchestrator.logs`)."""
        query.validate()
        view = await self.get_service(raw_id)
        service_id = view.record.id
        replica = outputs.replica_entry(
            spec=view.record.spec, status=view.status.source, idx=idx
        ) or analytics_pb2.ReplicaStatus(index=idx, run=service_id)
        live = await self._live_logs.attempts(service_id=service_id, replica=replica)
        attempt = logs.pick_attempt(idx=idx, replica=replica, live=live, wanted=query.attempt)
        stored = next((g for g in replica.logs if g.attempt == attempt), None)
        if stored is not None:
            source = self._files.stream(stored.file_id)
            async for chunk in logs.whole(
                source, query=query, attempt=attempt, truncated=stored.truncated
            ):
                yield chunk
            return

        async def ended() -> bool:
            current = outputs.newest_by_index(
                (await self.get_service(service_id)).status.source
            ).get(idx)
            if current is None or current.state in FINAL_REPLICA_STATES:
                return True
            newer = await self._live_logs.attempts(service_id=service_id, replica=current)
            return bool(newer) and max(newer) > attempt

        source = self._live_logs.stream(
            logs.AttemptLog(service_id=service_id, replica=replica, attempt=attempt),
            until=ended if query.follow else None,
        )
        reader = logs.follow if query.follow else logs.whole
        async for chunk in reader(source, query=query, attempt=attempt, truncated=False):
            yield chunk

    # --- terminate ------------------------------------------------------------------

    async def terminate(self, raw_id: str) -> tuple[str, ServiceView]:
        record = await self._record(raw_id)
        if not record.terminated:
            resource = await self._store.get(record.id)
            last = resource.status if resource is not None and resource.has_status else None
            if await self._records.mark_terminated(record.id, at=self._clock(), last_status=last):
                log.info(
                    "service terminated", service_id=record.id, phase=last.phase if last else ""
                )
        await self._store.delete(record.id)
        view = await self.get_service(record.id)
        return TERMINATED_MESSAGE.format(id=record.id), view

    # --- retry, resubmit, suspend, resume (rules: :mod:`dtpoc_orchestrator.actions`) ----

    async def retry(self, raw_id: str) -> actions.Retry:
        """Run the failed replicas again; answer the run and the attempt each runs as."""
        record = await self._record(raw_id)
        resource = await self._store.get(record.id)
        retry = actions.retry_attempts(record, resource)
        assert resource is not None  # retry_attempts refuses a missing resource
        updated = await self._store_patch(record.id, retry.changes(resource.spec))
        await self._records.set_spec(record.id, updated.spec)
        log.info("service retried", service_id=record.id, run=retry.run, attempts=retry.attempts)
        return retry

    async def resubmit(self, raw_id: str) -> str:
        """Launch the record's spec and inputs again; answer the new id (module docs)."""
        record = await self._record(raw_id)
        new_id = await self._launch_spec(
            actions.resubmitted_spec(record), labels=dict(record.labels), resubmits=record.id
        )
        # The new record names its origin from its insert; a crash before this line
        # leaves the origin's list one short, never a link to nothing.
        await self._records.add_resubmission(record.id, new_id)
        return new_id

    async def set_suspended(self, raw_id: str, *, suspend: bool) -> tuple[str, ServiceView]:
        record = await self._record(raw_id)
        actions.check_suspendable(record, suspend=suspend)
        updated = await self._store_patch(record.id, {"suspend": suspend})
        await self._records.set_spec(record.id, updated.spec)
        log.info("service suspended" if suspend else "service resumed", service_id=record.id)
        word = "suspended: it starts no new run" if suspend else "resumed: it runs on schedule"
        return f"service {record.id} {word}", await self.get_service(record.id)

    async def _store_patch(
        self, service_id: str, changes: dict[str, Any]
    ) -> domain.AnalyticsObject:
        try:
            return await self._store.patch_spec(service_id, changes)
        except errors.NotFound:
            raise errors.FailedPrecondition(
                f"service {service_id} has no workload resource (it is being terminated)"
            ) from None

    # --- watch ------------------------------------------------------------------------

    async def watch(self, raw_id: str) -> AsyncIterator[status.DerivedStatus]:
        """The status now, then each change, until a final phase."""
        record = await self._record(raw_id)
        if record.terminated:
            yield (await self._view(record, await self._store.get(record.id))).status
            return
        last: status.DerivedStatus | None = None
        async with contextlib.aclosing(self._store.watch(record.id)) as changes:
            async for resource in changes:
                current = await self._records.get(record.id)
                if current is None:
                    raise errors.NotFound(f"no service {record.id}")
                derived = (await self._view(current, resource)).status
                if derived != last:
                    yield derived
                    last = derived
                if derived.final:
                    return

    # --- file usage -------------------------------------------------------------------

    async def file_usage(self, file_id: str) -> FileUsage:
        if not validation.FILE_ID.match(file_id or ""):
            raise errors.InvalidArgument(
                f"must be 24 lower-case hexadecimal digits, got {file_id!r}", field="file_id"
            )
        active: list[str] = []
        terminated: list[str] = []
        for record in await self._records.mounting(file_id):
            if record.state == domain.STATE_CREATING:
                # A launch in progress counts as a user; a dead one is settled away.
                settled = await self._settle(record)
                if settled is None and await self._records.get(record.id) is None:
                    continue
            (terminated if record.terminated else active).append(record.id)
        return FileUsage(active=active, terminated=terminated)
