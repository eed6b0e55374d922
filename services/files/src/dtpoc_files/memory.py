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

import builtins
import datetime
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

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
    #: reference id -> when it was recorded (a first upload's: the file's upload date).
    recorded_at: dict[str, datetime.datetime] = field(default_factory=dict)
    #: reference id -> its number in the order outputs were recorded (all files').
    rows: dict[str, int] = field(default_factory=dict)
    generation: int = 0


class InMemoryFileStore:
    """Fake of :class:`~dtpoc_files.ports.FileStore`."""

    def __init__(self, *, chunk_bytes: int = 255 * 1024) -> None:
        self.files: dict[str, _Stored] = {}
        self.claims: dict[str, str] = {}
        self.pending: set[str] = set()
        #: Numbers the recorded references in order (GridFS numbers each listing's rows).
        self._recorded = itertools.count(1)
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
        if query.filter.by_output:
            return self._list_outputs(query)
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

    def _list_outputs(
        self, query: domain.ListQuery
    ) -> tuple[builtins.list[domain.FileRecord], bool]:
        """One row per recorded output, newest recorded first, as GridFSStore lists them."""
        wanted = query.filter
        rows = [
            domain.output_row(
                s.record, row=s.rows[ref], output=output, recorded_at=s.recorded_at[ref]
            )
            for s in self.files.values()
            for ref, output in s.references.items()
            if output is not None
            and wanted.service_id in (None, output.service_id)
            and wanted.replica_index in (None, output.replica_index)
        ]
        rows = [r for r in rows if wanted.filename in (None, r.filename)]
        rows.sort(key=lambda r: r.row or 0, reverse=True)
        if query.after is not None and query.after.row is not None:
            before = query.after.row
            rows = [r for r in rows if (r.row or 0) < before]
        page = rows[query.skip : query.skip + query.limit + 1]
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

    def next_row(self) -> int:
        """The number of the next recorded output reference."""
        return next(self._recorded)

    def add_reference(self, file_id: str, output: domain.OutputReference | None) -> None:
        """One more upload (or recorded output) holds the file: a new generation."""
        stored = self.files[file_id]
        reference_id = output.reference_id(file_id) if output else str(ObjectId())
        first = references.first_reference_id(file_id)
        again = output is not None and stored.references.get(first) == output
        if reference_id not in stored.references and not again:
            stored.references[reference_id] = output
            stored.recorded_at[reference_id] = _now()
            stored.rows[reference_id] = self.next_row()
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
        self, upload: domain.VerifiedUpload, *, still_wanted: Callable[[], bool] = lambda: True
    ) -> domain.UploadOutcome:
        store = self._store
        owner = store.claims.get(upload.digest.sha256)
        if owner is not None and owner in store.files:
            if not still_wanted():
                raise UploadAbandoned(f"upload {self.file_id} was abandoned by its client")
            store.add_reference(owner, upload.output)
            await self.discard()
            return domain.UploadOutcome(record=store.files[owner].record, deduplicated=True)
        if not still_wanted():
            raise UploadAbandoned(f"upload {self.file_id} was abandoned by its client")
        file_id = str(self.file_id)
        record = domain.FileRecord(
            file_id=file_id,
            filename=upload.filename,
            length=upload.digest.length,
            upload_date=_now(),
            metadata=dict(upload.metadata),
            chunk_size=self._chunk_bytes,
        )
        first = references.first_reference_id(file_id)
        store.files[file_id] = _Stored(
            record=record,
            data=bytes(self._data),
            references={first: upload.output},
            recorded_at={first: record.upload_date},
            rows={first: store.next_row()},
        )
        store.claims[upload.digest.sha256] = file_id
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
