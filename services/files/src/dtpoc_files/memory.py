"""In-memory fakes of the Files service's ports (:mod:`dtpoc_files.ports`).

Named test doubles kept beside the adapters rather than under tests/: mypy
--strict checks them against the same Protocols as GridFS and the orchestrator
client, so a port that changes breaks its fake at ``make typecheck``; and the
contract tests (``tests/files/test_store_contract.py``,
``tests/files/test_usage_contract.py``) run each fake beside its real adapter,
so it cannot drift. Production wiring (:mod:`dtpoc_files.server`) never builds
them.

The store keeps what GridFS and the reference book keep: visible files with
their bytes, one claim per SHA-256 (deduplication), the references of each
file (uploads, recorded outputs) and its change generation (new references
and announced mounts advance it; a delete that read an older one fails).
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId

from dtpoc_common import errors
from dtpoc_files import domain, ports, references
from dtpoc_files.gridfs_store import UploadAbandoned


def _now() -> datetime.datetime:
    moment = datetime.datetime.now(tz=datetime.UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass
class _Stored:
    record: domain.FileRecord
    data: bytes
    #: reference id -> the output it records (None: an upload), in the order added.
    references: dict[str, domain.OutputReference | None] = field(default_factory=dict)
    generation: int = 0


class InMemoryFileStore:
    """Fake of :class:`~dtpoc_files.ports.FileStore`."""

    def __init__(self, *, chunk_bytes: int = 255 * 1024) -> None:
        self.files: dict[str, _Stored] = {}
        self.claims: dict[str, str] = {}
        self.pending: set[str] = set()
        self._chunk_bytes = chunk_bytes

    def _stored(self, file_id: str) -> _Stored:
        stored = self.files.get(file_id)
        if stored is None:
            raise errors.NotFound(f"file {file_id} does not exist", field="file_id")
        return stored

    async def begin_upload(self, *, filename: str) -> InMemoryPendingUpload:
        upload = InMemoryPendingUpload(self, file_id=ObjectId(), chunk_bytes=self._chunk_bytes)
        self.pending.add(str(upload.file_id))
        return upload

    async def get(self, file_id: str) -> domain.FileRecord:
        return self._stored(file_id).record

    async def list(self, query: domain.ListQuery) -> tuple[list[domain.FileRecord], bool]:
        wanted = query.filter
        found = [
            s.record
            for s in self.files.values()
            if (
                wanted.service_id is None
                or s.record.metadata.get("service_id") == wanted.service_id
            )
            and (
                wanted.replica_index is None
                or s.record.metadata.get("replica_index") == wanted.replica_index
            )
            and (wanted.filename is None or s.record.filename == wanted.filename)
        ]
        found.sort(key=lambda r: (r.upload_date, r.file_id), reverse=True)
        if query.after is not None:
            after = (query.after.upload_date, query.after.file_id)
            found = [r for r in found if (r.upload_date, r.file_id) < after]
        page = found[query.skip : query.skip + query.limit + 1]
        return page[: query.limit], len(page) > query.limit

    async def read_range(
        self, record: domain.FileRecord, byte_range: domain.ByteRange, *, piece_bytes: int
    ) -> AsyncIterator[bytes]:
        data = self._stored(record.file_id).data[byte_range.offset : byte_range.end]
        for start in range(0, len(data), piece_bytes):
            yield data[start : start + piece_bytes]

    async def references(self, file_id: str) -> domain.References:
        stored = self._stored(file_id)
        held = stored.references
        return domain.References(
            uploads=tuple(ref for ref, output in held.items() if output is None),
            outputs=tuple(output for output in held.values() if output is not None),
            generation=stored.generation,
        )

    async def announce_mount(self, file_id: str) -> domain.FileRecord:
        stored = self._stored(file_id)
        stored.generation += 1
        return stored.record

    async def drop_upload_reference(self, reference_id: str) -> bool:
        for stored in self.files.values():
            if reference_id in stored.references and stored.references[reference_id] is None:
                del stored.references[reference_id]
                return True
        return False

    async def delete_if_unchanged(self, file_id: str, *, generation: int) -> bool:
        stored = self.files.get(file_id)
        if stored is None or stored.generation != generation:
            return False
        del self.files[file_id]
        self.claims = {sha: owner for sha, owner in self.claims.items() if owner != file_id}
        return True

    def add_reference(self, file_id: str, output: domain.OutputReference | None) -> None:
        """One more upload (or recorded output) holds the file: a new generation."""
        stored = self.files[file_id]
        reference_id = output.reference_id(file_id) if output else str(ObjectId())
        stored.references.setdefault(reference_id, output)
        stored.generation += 1


def _matches(record: domain.FileRecord, wanted: domain.FileFilter) -> bool:
    labels = record.metadata
    return (
        (wanted.service_id is None or labels.get("service_id") == wanted.service_id)
        and (wanted.replica_index is None or labels.get("replica_index") == wanted.replica_index)
        and (wanted.filename is None or record.filename == wanted.filename)
    )


class InMemoryPendingUpload:
    """Fake of :class:`~dtpoc_files.ports.PendingUpload`."""

    def __init__(self, store: InMemoryFileStore, *, file_id: ObjectId, chunk_bytes: int) -> None:
        self._store = store
        self.file_id = file_id
        self._chunk_bytes = chunk_bytes
        self._data = bytearray()

    async def write(self, data: bytes) -> None:
        self._data += data

    async def commit(
        self,
        *,
        filename: str,
        metadata: Mapping[str, Any],
        digest: domain.Digest,
        still_wanted: Callable[[], bool] = lambda: True,
    ) -> domain.UploadOutcome:
        store = self._store
        owner = store.claims.get(digest.sha256)
        if owner is not None and owner in store.files:
            if not still_wanted():
                raise UploadAbandoned(f"upload {self.file_id} was abandoned by its client")
            store.add_reference(owner, domain.output_reference(metadata))
            await self.discard()
            return domain.UploadOutcome(record=store.files[owner].record, deduplicated=True)
        if not still_wanted():
            raise UploadAbandoned(f"upload {self.file_id} was abandoned by its client")
        file_id = str(self.file_id)
        record = domain.FileRecord(
            file_id=file_id,
            filename=filename,
            length=digest.length,
            upload_date=_now(),
            metadata=dict(metadata),
            chunk_size=self._chunk_bytes,
        )
        first = references.first_reference_id(file_id)
        store.files[file_id] = _Stored(
            record=record,
            data=bytes(self._data),
            references={first: domain.output_reference(metadata)},
        )
        store.claims[digest.sha256] = file_id
        store.pending.discard(file_id)
        return domain.UploadOutcome(record=record, deduplicated=False)

    async def discard(self) -> None:
        self._data.clear()
        self._store.pending.discard(str(self.file_id))


class InMemoryFileUsage:
    """Fake of :class:`~dtpoc_files.ports.FileUsage`: ``mounts`` is what the orchestrator
    would answer (file id -> ids of services that are not terminated)."""

    def __init__(self) -> None:
        self.mounts: dict[str, list[str]] = {}
        self.asked: list[str] = []

    async def active_service_ids(self, file_id: str) -> list[str]:
        self.asked.append(file_id)
        return list(self.mounts.get(file_id, []))

    async def close(self) -> None:
        return None


def _conforms(
    store: InMemoryFileStore, upload: InMemoryPendingUpload, usage: InMemoryFileUsage
) -> tuple[ports.FileStore, ports.PendingUpload, ports.FileUsage]:
    """Never called: mypy checks here that each fake implements its port."""
    return store, upload, usage
