"""In-memory fakes of the operator's ports (:mod:`dtpoc_operator.ports`).

Named test doubles that live with the adapters rather than under tests/:
mypy --strict checks them against the same Protocols as the real adapters, so
a port that changes breaks its fake at ``make typecheck``; and the contract
tests (``tests/operator/test_*_contract.py``) run each fake beside its real
adapters, so a fake cannot drift from what the real ones do. Production wiring
(:mod:`dtpoc_operator.app`) never builds them.

- :class:`InMemoryAnalyticsStore`: Analytics as the Kubernetes API keeps them
  (a finalizer holds a deletion), plus the platform's side a test plays
  (``create``, ``patch_spec``, ``delete``: what the orchestrator writes).
- :class:`InMemoryRuntime`: a workload per service that the test drives
  (``start``, ``finish`` with outputs and a log), as a kubelet or a process would.
- :class:`InMemoryFiles`: the Files ``UploadFile`` call, content stored once
  per SHA-256 (the same content answers the same id), refusing what Files refuses.

:class:`~dtpoc_common.faults.Faults` makes the next calls of a method fail, as an unreachable
dependency would.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
from bson import ObjectId
from google.protobuf import json_format

from dtpoc.files.v1alpha1 import files_pb2
from dtpoc_common import analytics
from dtpoc_common.faults import Faults
from dtpoc_common.vocabulary import JobType, ReplicaState
from dtpoc_operator import layout, model, ports, refusals
from dtpoc_operator.model import AnalyticsResource, Observation, Replica, ServiceKey, Status

#: The operator's finalizer (one constant for the whole platform).
FINALIZER = analytics.FINALIZER


def _round_trip(status: Status) -> Status:
    """The status as a store gives it back: through the CRD's JSON."""
    as_dict = analytics.status_to_dict(model.status_to_proto(status))
    return model.status_from_proto(analytics.status_from_dict(as_dict))


class InMemoryAnalyticsStore:
    """Fake of :class:`~dtpoc_operator.ports.AnalyticsStore` (Kubernetes semantics)."""

    def __init__(self, *, namespace: str = "", clock: Any = model.utcnow) -> None:
        self.namespace = namespace
        self.resources: dict[ServiceKey, AnalyticsResource] = {}
        #: Every status written, in order: what a watcher of the resource saw change.
        self.status_writes: list[tuple[ServiceKey, Status]] = []
        self.faults = Faults()
        self._specs: dict[ServiceKey, dict[str, Any]] = {}
        self._clock = clock

    # --- the platform's side (what the orchestrator writes) ---------------------------------

    def key(self, service_id: str) -> ServiceKey:
        return ServiceKey(namespace=self.namespace, name=service_id)

    def create(self, service_id: str, spec: Mapping[str, Any]) -> ServiceKey:
        """A new Analytics at generation 1, as a launch writes it (CRD JSON names): with
        the operator's finalizer, so its deletion waits for an operator."""
        key = self.key(service_id)
        self._specs[key] = dict(spec)
        self.resources[key] = AnalyticsResource(
            key=key,
            uid=str(ObjectId()),
            generation=1,
            spec=self._spec(key),
            status=Status(),
            creation_time=self._clock(),
            finalizers=(FINALIZER,),
        )
        return key

    def patch_spec(self, service_id: str, changes: Mapping[str, Any]) -> None:
        """A merge patch of the spec (retry, suspend): one generation up."""
        key = self.key(service_id)
        self._specs[key].update(changes)
        current = self.resources[key]
        self.resources[key] = replace(
            current, spec=self._spec(key), generation=current.generation + 1
        )

    def delete(self, service_id: str) -> None:
        """A deletion: held while a finalizer is on the resource, else immediate."""
        key = self.key(service_id)
        current = self.resources[key]
        if not current.finalizers:
            del self.resources[key]
        elif not current.deleting:
            self.resources[key] = replace(current, deleting=True, deletion_time=self._clock())

    def _spec(self, key: ServiceKey) -> model.ServiceSpec:
        return model.ServiceSpec.from_proto(analytics.spec_from_dict(self._specs[key]))

    # --- the port ---------------------------------------------------------------------------

    async def get(self, key: ServiceKey) -> AnalyticsResource | None:
        self.faults.check("get")
        return self.resources.get(key)

    async def list_keys(self) -> list[ServiceKey]:
        self.faults.check("list_keys")
        return list(self.resources)

    async def ensure_finalizer(self, resource: AnalyticsResource) -> AnalyticsResource:
        self.faults.check("ensure_finalizer")
        current = self.resources.get(resource.key)
        if current is None or FINALIZER in current.finalizers:
            return current or resource
        self.resources[resource.key] = replace(current, finalizers=(*current.finalizers, FINALIZER))
        return self.resources[resource.key]

    async def write_status(self, resource: AnalyticsResource, status: Status) -> None:
        self.faults.check("write_status")
        current = self.resources.get(resource.key)
        if current is None:
            raise ports.AdapterError(f"Analytics {resource.key} is gone")
        stored = _round_trip(status)
        self.resources[resource.key] = replace(current, status=stored)
        self.status_writes.append((resource.key, stored))

    async def finish_deletion(self, resource: AnalyticsResource) -> None:
        self.faults.check("finish_deletion")
        current = self.resources.get(resource.key)
        if current is None:
            return
        if current.deleting:
            del self.resources[resource.key]
        else:
            kept = tuple(f for f in current.finalizers if f != FINALIZER)
            self.resources[resource.key] = replace(current, finalizers=kept)


@dataclass
class _Workload:
    replicas: dict[int, Replica]
    stopped: bool = False


@dataclass
class InMemoryRuntime:
    """Fake of :class:`~dtpoc_operator.ports.Runtime`: one workload per service, driven
    by the test. Ondemand replicas start pending; a retry (``spec.replicaAttempts``
    raised for a failed replica) starts that replica's next attempt, in a folder of
    its own; the other job types are a ready workload whose replicas run."""

    output_root: Path
    #: Calls of ``stop`` that answer "still stopping" before the workload goes.
    stop_polls: int = 0
    name: str = "memory"
    workloads: dict[str, _Workload] = field(default_factory=dict)
    #: Service ids in the order their workload was created (a twin shows up here).
    created: list[str] = field(default_factory=list)
    #: Service ids of every ``sync`` call.
    synced: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    logs: dict[tuple[str, int, int], bytes] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)

    # --- what the replicas do (the test's side) ---------------------------------------------

    @staticmethod
    def pod_name(service_id: str, index: int, attempt: int) -> str:
        return f"{service_id}-{index}-{attempt}"

    def start(self, service_id: str, index: int, *, at: dt.datetime | None = None) -> None:
        self._set(service_id, index, state=ReplicaState.RUNNING, start_time=at or model.utcnow())

    def finish(
        self,
        resource: AnalyticsResource,
        index: int,
        *,
        exit_code: int = 0,
        reason: str = "",
        outputs: Mapping[str, bytes] | None = None,
        log: bytes = b"",
    ) -> None:
        """Replica ``index`` writes ``outputs`` (relative paths) and ends with ``exit_code``."""
        replica = self.workloads[resource.service_id].replicas[index]
        self.write(resource, index, outputs or {})
        if log:
            self.logs[(resource.service_id, index, replica.attempt)] = log
        self._set(
            resource.service_id,
            index,
            state=ReplicaState.SUCCEEDED if exit_code == 0 else ReplicaState.FAILED,
            exit_code=exit_code,
            reason=reason or ("" if exit_code == 0 else "Error"),
            finish_time=model.utcnow(),
        )

    def write(self, resource: AnalyticsResource, index: int, outputs: Mapping[str, bytes]) -> Path:
        """Replica ``index``'s current attempt writes ``outputs``; returns its folder."""
        replica = self.workloads[resource.service_id].replicas[index]
        folder = layout.attempt_folder(
            self.output_folder(resource, run=replica.run, index=index),
            job_type=resource.spec.job_type,
            attempt=replica.pod_name,
        )
        folder.mkdir(parents=True, exist_ok=True)
        for relpath, content in outputs.items():
            target = folder / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        return folder

    def _set(self, service_id: str, index: int, **changes: Any) -> None:
        workload = self.workloads[service_id]
        workload.replicas[index] = replace(workload.replicas[index], **changes)

    # --- the port ---------------------------------------------------------------------------

    def problem(self, resource: AnalyticsResource) -> tuple[str, str] | None:
        """The refusals both real runtimes share (see their ``problem``)."""
        return refusals.identity_problem(resource) or refusals.input_names_problem(resource)

    async def sync(self, resource: AnalyticsResource, *, allow_create: bool) -> ports.SyncResult:
        self.faults.check("sync")
        self.synced.append(resource.service_id)
        workload = self.workloads.get(resource.service_id)
        if workload is None and allow_create:
            workload = self._create(resource)
        if workload is not None:
            self._retry(resource, workload)
        return ports.SyncResult(observation=await self.observe(resource))

    def _create(self, resource: AnalyticsResource) -> _Workload:
        sid = resource.service_id
        running = resource.spec.job_type != JobType.ONDEMAND
        workload = _Workload(
            replicas={
                i: self._attempt(resource, i, ReplicaState.RUNNING if running else None)
                for i in range(resource.spec.reps)
            }
        )
        self.workloads[sid] = workload
        self.created.append(sid)
        return workload

    def _attempt(self, resource: AnalyticsResource, index: int, state: str | None) -> Replica:
        attempt = resource.spec.attempt_of(index)
        return Replica(
            run=resource.service_id,
            index=index,
            state=state or ReplicaState.PENDING,
            pod_name=self.pod_name(resource.service_id, index, attempt),
            attempt=attempt,
        )

    def _retry(self, resource: AnalyticsResource, workload: _Workload) -> None:
        for index, replica in list(workload.replicas.items()):
            wanted = resource.spec.attempt_of(index)
            if replica.state == ReplicaState.FAILED and wanted > replica.attempt:
                workload.replicas[index] = self._attempt(resource, index, None)

    async def observe(self, resource: AnalyticsResource) -> Observation:
        self.faults.check("observe")
        workload = self.workloads.get(resource.service_id)
        if workload is None or workload.stopped:
            return Observation()
        return Observation(
            replicas=tuple(workload.replicas[i] for i in sorted(workload.replicas)),
            live_runs=frozenset({resource.service_id}),
            ready=True,
        )

    async def stop(self, resource: AnalyticsResource, *, force: bool) -> bool:
        self.faults.check("stop")
        workload = self.workloads.get(resource.service_id)
        if workload is None:
            return True
        if self.stop_polls > 0 and not force:
            self.stop_polls -= 1
            return False
        workload.stopped = True
        return True

    def output_folder(self, resource: AnalyticsResource, *, run: str, index: int) -> Path:
        relative = layout.output_relpath(
            service_id=resource.service_id, job_type=resource.spec.job_type, run=run, index=index
        )
        return self.output_root / relative

    async def attempt_logs(
        self, resource: AnalyticsResource, replica: Replica
    ) -> list[ports.AttemptLog]:
        return [
            ports.AttemptLog(
                attempt=attempt,
                name=self.pod_name(resource.service_id, replica.index, attempt),
                content=self.logs[(resource.service_id, replica.index, attempt)],
            )
            for attempt in range(1, replica.attempt + 1)
            if (resource.service_id, replica.index, attempt) in self.logs
        ]

    async def forget(self, resource: AnalyticsResource) -> None:
        self.workloads.pop(resource.service_id, None)
        self.forgotten.append(resource.service_id)


@dataclass(frozen=True)
class StoredFile:
    """One file the fake Files holds: its bytes and what each upload of it said."""

    content: bytes
    filename: str
    metadata: dict[str, Any]


def _refused(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


class InMemoryFiles:
    """Fake of :class:`~dtpoc_operator.ports.FilesUploads`: what the collector and the
    log store call. Content is kept once per SHA-256; a stream whose bytes differ
    from the expected digest or length, or that ends without ``finish``, stores
    nothing and is refused with INVALID_ARGUMENT, as Files refuses it."""

    def __init__(self) -> None:
        self.files: dict[str, StoredFile] = {}
        self._ids: dict[str, str] = {}
        #: Every upload that was stored, as (file id, metadata): a re-upload shows here.
        self.uploads: list[tuple[str, dict[str, Any]]] = []
        self.faults = Faults()

    @property
    def UploadFile(self) -> ports.UploadCall:  # noqa: N802 - the gRPC method's name
        return self._upload

    async def _upload(
        self,
        request_iterator: AsyncIterator[files_pb2.UploadFileRequest],
        /,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the stub's signature; unused here
    ) -> files_pb2.UploadFileResponse:
        self.faults.check("UploadFile")
        header: files_pb2.UploadFileHeader | None = None
        chunks: list[bytes] = []
        finished = False
        async for request in request_iterator:
            which = request.WhichOneof("payload")
            if which == "header":
                header = request.header
            elif which == "chunk":
                chunks.append(request.chunk)
            elif which == "finish":
                finished = True
        if header is None or not finished:
            raise _refused(grpc.StatusCode.INVALID_ARGUMENT, "the upload did not finish")
        content = b"".join(chunks)
        digest = hashlib.sha256(content).hexdigest()
        if header.expected_sha256 and header.expected_sha256.lower() != digest:
            raise _refused(grpc.StatusCode.INVALID_ARGUMENT, "content does not match sha256")
        if header.HasField("expected_length") and header.expected_length != len(content):
            raise _refused(grpc.StatusCode.INVALID_ARGUMENT, "content does not match length")
        file_id = self._ids.setdefault(digest, str(ObjectId()))
        metadata = json_format.MessageToDict(header.metadata) if header.HasField("metadata") else {}
        self.files.setdefault(file_id, StoredFile(content, header.filename, metadata))
        self.uploads.append((file_id, metadata))
        return files_pb2.UploadFileResponse(file_id=file_id)
