"""The Files service's ports: what its use cases (:mod:`dtpoc_files.service`) call out to.

- :class:`FileStore` (and the :class:`PendingUpload` it begins): the real adapter is
  :class:`dtpoc_files.gridfs_store.GridFSStore` (GridFS in MongoDB), the fake
  :class:`dtpoc_files.memory.InMemoryFileStore`;
- :class:`FileUsage` (who mounts a file, :mod:`dtpoc_files.usage`): the real adapter
  asks the orchestrator (``OrchestratorFileUsage``), the fake is
  :class:`dtpoc_files.memory.InMemoryFileUsage`.

Both pairs pass the same contract tests (``tests/files/test_store_contract.py``,
``tests/files/test_usage_contract.py``). Besides the domain errors, a store raises
:class:`~dtpoc_files.gridfs_store.UploadAbandoned` from a commit whose client went
away and :class:`~dtpoc_files.gridfs_store.CorruptFile` from a read of a broken file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from dtpoc_files import domain
from dtpoc_files.usage import FileUsage

__all__ = ["FileStore", "FileUsage", "PendingUpload"]


class PendingUpload(Protocol):
    """An upload in progress: written, not visible to anyone until committed."""

    @property
    def file_id(self) -> object: ...

    async def write(self, data: bytes) -> None:
        """Store ``data`` after what was written before."""
        ...

    async def commit(
        self, upload: domain.VerifiedUpload, *, still_wanted: Callable[[], bool] = ...
    ) -> domain.UploadOutcome:
        """Make the upload visible, or answer the identical file already stored (adding
        this upload's reference to it)."""
        ...

    async def discard(self) -> None:
        """Delete everything this upload stored; safe to call more than once."""
        ...


class FileStore(Protocol):
    """Visible files, their bytes and who holds them (uploads, recorded outputs)."""

    async def begin_upload(self, *, filename: str) -> PendingUpload: ...

    async def get(self, file_id: str) -> domain.FileRecord:
        """The record of a visible file, or NOT_FOUND."""
        ...

    async def list(self, query: domain.ListQuery) -> tuple[list[domain.FileRecord], bool]:
        """One page of records, newest first (upload date, then id), and whether more follow."""
        ...

    def read_range(
        self, record: domain.FileRecord, byte_range: domain.ByteRange, *, piece_bytes: int
    ) -> AsyncIterator[bytes]:
        """The bytes of ``byte_range`` in pieces of ``piece_bytes`` (the last may be shorter)."""
        ...

    async def references(self, file_id: str) -> domain.References:
        """Who holds a visible file; NOT_FOUND if absent or its deletion is committed."""
        ...

    async def announce_mount(self, file_id: str) -> domain.FileRecord:
        """A launch will mount the file: a delete that read before this decides again."""
        ...

    async def drop_upload_reference(self, reference_id: str) -> bool:
        """Remove one upload reference; True for exactly one of racing callers."""
        ...

    async def delete_if_unchanged(self, file_id: str, *, generation: int) -> bool:
        """Delete the file if nothing changed since ``generation``; False otherwise."""
        ...
