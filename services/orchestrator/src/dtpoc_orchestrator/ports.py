"""The orchestrator's ports: what its use cases (:mod:`dtpoc_orchestrator.service`) call out to.

Each port has a real adapter and a named in-memory fake
(:mod:`dtpoc_orchestrator.adapters.memory`); both pass the same contract tests
(``tests/orchestrator/test_*_contract.py``), so a use-case test on the fakes
says what the service does on the real ones.

- :class:`Records`: ``adapters.records.ServiceRecords`` (MongoDB), fake
  ``InMemoryServiceRecords``;
- :class:`AnalyticsStore` (desired state, :mod:`dtpoc_orchestrator.store`):
  ``adapters.kubernetes.KubernetesAnalyticsStore`` and
  ``adapters.local.LocalAnalyticsStore``, fake ``InMemoryAnalyticsStore``;
- :class:`Files`: ``adapters.files.FilesClient`` (gRPC), fake ``InMemoryFiles``.

Failures are domain errors: UNAVAILABLE means "the outcome is unknown".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_orchestrator import domain
from dtpoc_orchestrator.store import AnalyticsStore

__all__ = ["AnalyticsStore", "Files", "Records"]


class Records(Protocol):
    """The service records (``orchestrator.services``), one per service id.

    ``mark_launched`` and ``delete_creating`` decide a launch once: whichever
    runs first for a ``creating`` record wins, the other answers False.
    """

    async def insert(self, record: domain.ServiceRecord) -> None: ...

    async def get(self, service_id: str) -> domain.ServiceRecord | None: ...

    async def mark_launched(self, service_id: str) -> bool:
        """``creating`` -> ``launched``; False when the record is gone or was settled away."""
        ...

    async def delete_creating(self, service_id: str) -> bool:
        """Remove a record that never got its resource; False once it was launched."""
        ...

    async def creating(self) -> list[domain.ServiceRecord]:
        """Every record still ``creating``."""
        ...

    async def page(self, *, skip: int, limit: int) -> list[domain.ServiceRecord]:
        """Launched records, newest first (``created_at``, then id)."""
        ...

    def batches(self, *, size: int) -> AsyncIterator[list[domain.ServiceRecord]]:
        """Every launched record, newest first, ``size`` at a time."""
        ...

    async def mark_terminated(
        self,
        service_id: str,
        *,
        at: float,
        last_status: analytics_pb2.AnalyticsStatus | None,
    ) -> bool:
        """Set ``terminated_at`` and ``last_status`` once; False if already terminated."""
        ...

    async def keep_last_status(
        self, service_id: str, status: analytics_pb2.AnalyticsStatus
    ) -> None: ...

    async def set_spec(self, service_id: str, spec: analytics_pb2.AnalyticsSpec) -> None:
        """Replace the record's copy of the desired state."""
        ...

    async def add_resubmission(self, service_id: str, resubmission_id: str) -> None:
        """Add ``resubmission_id`` to the record's ``resubmissions`` (once)."""
        ...

    async def mounting(self, file_id: str) -> list[domain.ServiceRecord]:
        """Every record (any state) whose service mounts ``file_id``, oldest id first."""
        ...


class Files(Protocol):
    """The Files service as the orchestrator needs it (mount checks and outputs)."""

    async def get_info(self, file_id: str) -> domain.StoredFile:
        """The file's record; NotFound when there is no such file."""
        ...

    async def prepare_mount(self, file_id: str) -> domain.StoredFile:
        """A recorded launch will mount the file; NotFound when it does not exist."""
        ...

    async def replica_files(
        self, *, service_id: str, replica_index: int
    ) -> list[domain.StoredFile]:
        """Every output stored with metadata ``{service_id, replica_index}``; never a
        replica's stored log (metadata ``kind: log``)."""
        ...

    async def read(self, file_id: str, *, max_bytes: int) -> bytes | None:
        """The file's bytes, None when it is larger than ``max_bytes``."""
        ...

    def stream(self, file_id: str) -> AsyncIterator[bytes]:
        """The file's bytes in pieces (a stored log); NotFound when there is none."""
        ...
