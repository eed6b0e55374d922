"""The ports the reconciler needs: one adapter of the first two per runtime.

- :class:`AnalyticsStore`: where Analytics live (Kubernetes custom resources,
  or documents in MongoDB for the local runtime).
- :class:`Runtime`: what runs replicas (Jobs/CronJobs/Deployments, or child
  processes).
- :class:`FilesUploads`: the one Files call the collector and the log store
  make (the generated async stub is the real adapter).

Each has a named in-memory fake in :mod:`dtpoc_operator.memory`.

Both are small on purpose: the reconciler (:mod:`dtpoc_operator.reconciler`)
holds the order of work that makes the operator restart-safe, and the status
rules (:mod:`dtpoc_operator.status`) say what the status means, once, for both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dtpoc.files.v1alpha1 import files_pb2
from dtpoc_operator.model import AnalyticsResource, Observation, Replica, ServiceKey, Status


class AdapterError(Exception):
    """A dependency (apiserver, MongoDB, Files) failed in an expected way; the
    reconcile is retried with backoff and the log gets a warning, not a trace."""


class AnalyticsStore(Protocol):
    """Reads Analytics, writes their status (only), ends their deletion."""

    async def get(self, key: ServiceKey) -> AnalyticsResource | None:
        """The current resource, or None when it is gone."""
        ...

    async def list_keys(self) -> list[ServiceKey]:
        """Every resource this operator is responsible for."""
        ...

    async def ensure_finalizer(self, resource: AnalyticsResource) -> AnalyticsResource:
        """Make sure deletion waits for the operator (a no-op where deletion is a flag)."""
        ...

    async def write_status(self, resource: AnalyticsResource, status: Status) -> None:
        """Replace the resource's status (Kubernetes: through the status subresource)."""
        ...

    async def finish_deletion(self, resource: AnalyticsResource) -> None:
        """Let a resource marked for deletion go (remove the finalizer / the document)."""
        ...


@dataclass(frozen=True)
class AttemptLog:
    """The log of one ended attempt of a replica, as the runtime keeps it
    (:mod:`dtpoc_common.replica_logs` format, capped already)."""

    attempt: int
    name: str
    content: bytes


@dataclass(frozen=True)
class SyncResult:
    """What :meth:`Runtime.sync` saw, and when it wants to look again."""

    observation: Observation
    requeue_after: float | None = None
    #: The workload was only just created and what is observed of it says nothing new
    #: yet (no pods, or not all of them, every replica pending): the first status write
    #: may wait for its next events, or ``requeue_after``, so a new service costs one
    #: status write, not two or three.
    status_can_wait: bool = False


class Runtime(Protocol):
    """Creates, observes and stops the replicas of one service."""

    name: str

    def problem(self, resource: AnalyticsResource) -> tuple[str, str] | None:
        """A configuration problem that makes the service fail at once, as
        (reason, message); None when the runtime can run it."""
        ...

    async def sync(self, resource: AnalyticsResource, *, allow_create: bool) -> SyncResult:
        """Bring the workload to the spec and observe it.

        ``allow_create`` False means: the service ran already (its status has
        replicas), so a missing ondemand workload must not be created again.
        """
        ...

    async def observe(self, resource: AnalyticsResource) -> Observation:
        """Observe without changing anything (used while terminating)."""
        ...

    async def stop(self, resource: AnalyticsResource, *, force: bool) -> bool:
        """Stop every replica; True once nothing runs any more (or ``force``)."""
        ...

    def output_folder(self, resource: AnalyticsResource, *, run: str, index: int) -> Path:
        """Where the operator finds replica ``index`` of ``run``'s outputs."""
        ...

    async def attempt_logs(self, resource: AnalyticsResource, replica: Replica) -> list[AttemptLog]:
        """The logs of every attempt of a final replica, oldest first; empty when
        the runtime no longer has them (already stored, or gone)."""
        ...

    async def forget(self, resource: AnalyticsResource) -> None:
        """Drop what the runtime keeps for a service whose deletion is done."""
        ...


class UploadCall(Protocol):
    """``FilesService.UploadFile`` as a client-stream call (the stub's signature)."""

    def __call__(
        self,
        request_iterator: AsyncIterator[files_pb2.UploadFileRequest],
        /,
        *,
        timeout: float | None = None,
    ) -> Awaitable[files_pb2.UploadFileResponse]: ...


class FilesUploads(Protocol):
    """What the operator calls of Files: uploads of outputs and logs.

    Errors are gRPC's (``grpc.aio.AioRpcError``): INVALID_ARGUMENT and
    RESOURCE_EXHAUSTED refuse a file for good, anything else is "try again".
    """

    @property
    def UploadFile(self) -> UploadCall:  # noqa: N802 - the gRPC method's name
        ...
