"""In-memory fakes of the orchestrator's ports (:mod:`dtpoc_orchestrator.ports`).

Named test doubles that live with the adapters rather than under tests/:
mypy --strict checks them against the same Protocols as the real adapters,
so a port that changes breaks its fake at ``make typecheck``, not at the next
unit run; and the contract tests (``tests/orchestrator/test_*_contract.py``)
run each fake beside its real adapter, so a fake cannot drift from what the
real one does. Production wiring (:mod:`dtpoc_orchestrator.server`) never
builds them.

Each fake keeps what the real store keeps (records, resources as the
resource dicts the operator reads, files with their metadata) and answers
with the same domain errors; :class:`~dtpoc_common.faults.Faults` lets a test make the next call
of a method fail, as an unreachable dependency would.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import analytics, errors, replica_logs
from dtpoc_common.faults import Faults
from dtpoc_orchestrator import domain, logs, ports
from dtpoc_orchestrator.adapters import resources

#: How often a follow of :class:`InMemoryLiveLogs` asks whether the attempt is over while idle.
ENDED_CHECK_SECONDS = 0.05

#: Launch decisions, as in :mod:`dtpoc_orchestrator.adapters.records`.
LAUNCHED = "launched"
REMOVED = "removed"


class InMemoryServiceRecords:
    """Fake of :class:`~dtpoc_orchestrator.ports.Records`."""

    def __init__(self) -> None:
        self.records: dict[str, domain.ServiceRecord] = {}
        self._decisions: dict[str, str] = {}
        self.faults = Faults()

    def _decide(self, service_id: str, outcome: str) -> str:
        return self._decisions.setdefault(service_id, outcome)

    async def insert(self, record: domain.ServiceRecord) -> None:
        self.faults.check("insert")
        if record.id in self.records:
            raise errors.Unavailable(f"record {record.id} exists already")
        self.records[record.id] = record

    async def get(self, service_id: str) -> domain.ServiceRecord | None:
        self.faults.check("get")
        return self.records.get(service_id)

    async def mark_launched(self, service_id: str) -> bool:
        self.faults.check("mark_launched")
        if self._decide(service_id, LAUNCHED) != LAUNCHED:
            self.records.pop(service_id, None)
            return False
        record = self.records.get(service_id)
        if record is None:
            return False
        self.records[service_id] = record.replace(state=domain.STATE_LAUNCHED)
        return True

    async def delete_creating(self, service_id: str) -> bool:
        self.faults.check("delete_creating")
        if self._decide(service_id, REMOVED) != REMOVED:
            return False
        return self.records.pop(service_id, None) is not None

    async def creating(self) -> list[domain.ServiceRecord]:
        self.faults.check("creating")
        return [r for r in self.records.values() if r.state == domain.STATE_CREATING]

    async def page(self, *, skip: int, limit: int) -> list[domain.ServiceRecord]:
        self.faults.check("page")
        launched = [r for r in self.records.values() if r.state == domain.STATE_LAUNCHED]
        launched.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return launched[skip : skip + limit]

    async def batches(self, *, size: int) -> AsyncIterator[list[domain.ServiceRecord]]:
        for skip in itertools.count(0, size):
            batch = await self.page(skip=skip, limit=size)
            if batch:
                yield batch
            if len(batch) < size:
                return

    async def mark_terminated(
        self,
        service_id: str,
        *,
        at: float,
        last_status: analytics_pb2.AnalyticsStatus | None,
    ) -> bool:
        self.faults.check("mark_terminated")
        record = self.records.get(service_id)
        if record is None or record.terminated:
            return False
        self.records[service_id] = record.replace(terminated_at=at, last_status=last_status)
        return True

    async def keep_last_status(
        self, service_id: str, status: analytics_pb2.AnalyticsStatus
    ) -> None:
        self.faults.check("keep_last_status")
        record = self.records.get(service_id)
        if record is not None:
            self.records[service_id] = record.replace(last_status=status)

    async def set_spec(self, service_id: str, spec: analytics_pb2.AnalyticsSpec) -> None:
        self.faults.check("set_spec")
        record = self.records.get(service_id)
        if record is not None:
            self.records[service_id] = record.replace(spec=spec)

    async def add_resubmission(self, service_id: str, resubmission_id: str) -> None:
        self.faults.check("add_resubmission")
        record = self.records.get(service_id)
        if record is not None and resubmission_id not in record.resubmissions:
            self.records[service_id] = record.replace(
                resubmissions=(*record.resubmissions, resubmission_id)
            )

    async def mounting(self, file_id: str) -> list[domain.ServiceRecord]:
        self.faults.check("mounting")
        found = [r for r in self.records.values() if file_id in r.input_file_ids]
        return sorted(found, key=lambda r: r.id)


class InMemoryAnalyticsStore:
    """Fake of :class:`~dtpoc_orchestrator.store.AnalyticsStore`, with the operator's part.

    Resources are kept as the resource dicts the operator reads. A delete
    marks the resource ``deleting`` until :meth:`finish_deletion` (the
    operator's finalizer letting go), as the local store does;
    :meth:`write_status` is the operator writing status.
    """

    def __init__(self, *, backend: str = "local", namespace: str = "dtpoc") -> None:
        self.backend = backend
        self.namespace = namespace
        self.resources: dict[str, dict[str, Any]] = {}
        self.faults = Faults()
        self._changed = asyncio.Event()

    def _touch(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _object(self, service_id: str) -> domain.AnalyticsObject | None:
        resource = self.resources.get(service_id)
        return resources.from_resource(resource) if resource is not None else None

    async def create(
        self,
        *,
        service_id: str,
        spec: analytics_pb2.AnalyticsSpec,
        labels: dict[str, str],
    ) -> domain.AnalyticsObject:
        self.faults.check("create")
        if service_id in self.resources:
            raise errors.AlreadyExists(f"an Analytics resource {service_id} exists")
        resource = analytics.build_resource(
            service_id=service_id, namespace=self.namespace, spec=spec, labels=labels
        )
        resource["metadata"]["generation"] = 1
        resource["status"] = {}
        self.resources[service_id] = resource
        self._touch()
        return resources.from_resource(resource)

    async def get(self, service_id: str) -> domain.AnalyticsObject | None:
        self.faults.check("get")
        return self._object(service_id)

    async def get_many(self, service_ids: Sequence[str]) -> dict[str, domain.AnalyticsObject]:
        self.faults.check("get_many")
        found = (self._object(i) for i in dict.fromkeys(service_ids))
        return {o.name: o for o in found if o is not None}

    async def patch_spec(self, service_id: str, changes: dict[str, Any]) -> domain.AnalyticsObject:
        self.faults.check("patch_spec")
        resource = self.resources.get(service_id)
        if resource is None or resource["metadata"].get("deletionTimestamp"):
            raise errors.NotFound(f"no Analytics resource {service_id}")
        resource["spec"] = analytics.merge_spec(resource["spec"], changes)
        resource["metadata"]["generation"] = int(resource["metadata"]["generation"]) + 1
        self._touch()
        return resources.from_resource(resource)

    async def delete(self, service_id: str) -> bool:
        self.faults.check("delete")
        resource = self.resources.get(service_id)
        if resource is None:
            return False
        resource["metadata"].setdefault("deletionTimestamp", "deleting")
        self._touch()
        return True

    async def watch(self, service_id: str) -> AsyncGenerator[domain.AnalyticsObject | None, None]:
        while True:
            changed = self._changed
            yield self._object(service_id)
            await changed.wait()

    async def close(self) -> None:
        return None

    # --- the operator's part ---------------------------------------------------------

    def write_status(self, service_id: str, status: dict[str, Any]) -> None:
        """The operator writes the resource's status (resource JSON)."""
        self.resources[service_id]["status"] = status
        self._touch()

    def finish_deletion(self, service_id: str) -> None:
        """The operator stopped a deleted service's workload and let the resource go."""
        resource = self.resources.get(service_id)
        if resource is not None and resource["metadata"].get("deletionTimestamp"):
            del self.resources[service_id]
            self._touch()

    def delete_behind_our_back(self, service_id: str) -> None:
        """Someone with kubectl removed the resource."""
        self.resources.pop(service_id, None)
        self._touch()


@dataclass
class _File:
    info: domain.StoredFile
    data: bytes
    metadata: dict[str, Any] = field(default_factory=dict)


class InMemoryFiles:
    """Fake of :class:`~dtpoc_orchestrator.ports.Files`; :meth:`add` stores a file."""

    def __init__(self) -> None:
        self.files: dict[str, _File] = {}
        self.prepared: list[str] = []
        self.faults = Faults()

    def add(
        self,
        filename: str,
        data: bytes,
        *,
        metadata: dict[str, Any] | None = None,
        content_type: str = "application/octet-stream",
        file_id: str | None = None,
    ) -> str:
        """Store a file as an upload with ``metadata`` would; answers its id."""
        labels = dict(metadata or {})
        index = labels.get("replica_index")
        file_id = file_id or str(ObjectId())
        info = domain.StoredFile(
            file_id=file_id,
            filename=filename,
            path=str(labels.get("path") or filename),
            length=len(data),
            content_type=content_type,
            replica_index=int(index) if index is not None else None,
            run=str(labels.get("run") or ""),
            kind=str(labels.get(replica_logs.KIND_KEY) or ""),
        )
        self.files[file_id] = _File(info=info, data=data, metadata=labels)
        return file_id

    def remove(self, file_id: str) -> None:
        """The file was deleted from Files."""
        self.files.pop(file_id, None)

    def _stored(self, file_id: str) -> _File:
        stored = self.files.get(file_id)
        if stored is None:
            raise errors.NotFound(f"file {file_id} does not exist")
        return stored

    async def get_info(self, file_id: str) -> domain.StoredFile:
        self.faults.check("get_info")
        return self._stored(file_id).info

    async def prepare_mount(self, file_id: str) -> domain.StoredFile:
        self.faults.check("prepare_mount")
        info = self._stored(file_id).info
        self.prepared.append(file_id)
        return info

    async def replica_files(
        self, *, service_id: str, replica_index: int
    ) -> list[domain.StoredFile]:
        self.faults.check("replica_files")
        return [
            f.info
            for f in reversed(self.files.values())
            if f.metadata.get("service_id") == service_id
            and f.metadata.get("replica_index") == replica_index
            and f.info.kind != replica_logs.KIND
        ]

    async def read(self, file_id: str, *, max_bytes: int) -> bytes | None:
        self.faults.check("read")
        data = self._stored(file_id).data
        return data if len(data) <= max_bytes else None

    async def stream(self, file_id: str) -> AsyncIterator[bytes]:
        self.faults.check("stream")
        yield self._stored(file_id).data


def _conforms(
    records: InMemoryServiceRecords, store: InMemoryAnalyticsStore, files: InMemoryFiles
) -> tuple[ports.Records, ports.AnalyticsStore, ports.Files]:
    """Never called: mypy checks here that each fake implements its port."""
    return records, store, files


class InMemoryLiveLogs:
    """:class:`dtpoc_orchestrator.logs.LiveLogs` over what a test has a replica print.

    A replica is ``(service id, run, index)``; each attempt has one or more
    tries (a try restarted under the same attempt, as ``backoffLimitPerIndex``
    or a supervisor restart makes), each its own log. :meth:`print` appends to
    an attempt's latest try, :meth:`restart` begins a new try. A follow reads
    on until ``until`` answers True, then sends what was printed before that.
    """

    def __init__(self) -> None:
        self._logs: dict[tuple[str, str, int], dict[int, list[bytearray]]] = {}
        self._printed = asyncio.Condition()

    def _tries(
        self, service_id: str, replica: analytics_pb2.ReplicaStatus
    ) -> dict[int, list[bytearray]]:
        return self._logs.get((service_id, replica.run or service_id, replica.index), {})

    async def print(
        self, *, service_id: str, run: str, index: int, attempt: int, data: bytes
    ) -> None:
        """Append ``data`` to the attempt's latest try (its first, if it has none)."""
        tries = self._logs.setdefault((service_id, run, index), {}).setdefault(attempt, [])
        if not tries:
            tries.append(bytearray())
        tries[-1] += data
        async with self._printed:
            self._printed.notify_all()

    def restart(self, *, service_id: str, run: str, index: int, attempt: int) -> None:
        """Begin a new try of the attempt (its earlier tries have ended)."""
        self._logs.setdefault((service_id, run, index), {}).setdefault(attempt, []).append(
            bytearray()
        )

    async def attempts(self, *, service_id: str, replica: analytics_pb2.ReplicaStatus) -> list[int]:
        return sorted(self._tries(service_id, replica))

    async def stream(
        self, log: logs.AttemptLog, *, until: logs.Ended | None
    ) -> AsyncIterator[bytes]:
        tries = self._tries(log.service_id, log.replica).get(log.attempt, [])
        for earlier in tries[:-1]:
            if earlier:
                yield bytes(earlier)
        if not tries:
            return
        latest, sent = tries[-1], 0
        while True:
            if len(latest) > sent:
                data, sent = bytes(latest[sent:]), len(latest)
                yield data
                continue
            if until is None or await until():
                if len(latest) > sent:
                    yield bytes(latest[sent:])
                return
            async with self._printed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._printed.wait(), timeout=ENDED_CHECK_SECONDS)
