"""GridFS adapter: files and chunks in MongoDB, written and read as they stream.

Storage layout
--------------
Files are stored in the standard GridFS layout (``<bucket>.files`` and
``<bucket>.chunks``, GridFS spec fields), so that any driver's GridFS
(``gridfs.GridFSBucket``, Mongo Express, the original service) reads them
and files they wrote are served here. Two side collections hold what GridFS
has no place for:

``<bucket>.pending_uploads``
    One document per upload in progress: ``{_id: <file id>, filename,
    started_at, heartbeat_at}``.
``<bucket>.sha256``
    The content-identity claims: ``{_id: <sha256 hex>, file_id}``. Using the
    digest as ``_id`` makes uniqueness the database's job with nothing but the
    ``_id`` index, which every MongoDB-wire server enforces. (FerretDB 1.24
    does not implement ``partialFilterExpression``, so a unique index on
    ``metadata.sha256`` that tolerates legacy files without the field is not
    available; ``tests/files/test_ferretdb_support.py`` shows it.)

Why not ``AsyncGridIn``/``AsyncGridOut``
----------------------------------------
pymongo 4.20's ``AsyncGridIn`` buffers chunk documents until 48 MB
(``MAX_MESSAGE_SIZE``) have gathered before one ``insert_many``, and
``AsyncGridOut`` reads chunks through a cursor without a batch size (a first
batch of 101 chunks, about 25 MiB) sorted by ``n`` (which FerretDB performs in
its own memory for the whole file). Both break "memory bounded by a few
chunks", so this module writes and reads the GridFS documents itself, one
incoming message's chunks per ``insert_many`` and a few chunks per read
batch.

References and deletion
-----------------------
Who holds a file (uploads, recorded outputs) and the compare-and-set that
makes a delete safe against uploads and launches at the same moment live in
:mod:`dtpoc_files.references`; the files document only carries
``references: 1`` (an extra top-level field GridFS readers ignore) to say
they are kept there. A committed delete removes the files document first,
then chunks, claim and references; a server that dies in between leaves the
commit mark, and :meth:`GridFSStore.finish_interrupted_deletions` (run with
the sweep) completes it. A listing by service or replica is answered from
the output references, one row each, through their numbered rows
(:mod:`dtpoc_files.output_rows`, ``<bucket>.output_rows``), not from the
files document's metadata, which is only the first uploader's.

Visibility and crash safety
---------------------------
A file is visible exactly when its ``<bucket>.files`` document exists; GridFS
readers never look at chunks without one. An upload therefore goes:

1. insert the pending-upload record (before any chunk exists, so that no
   chunk is ever written that no record points at);
2. insert chunks as the bytes arrive, under the new file id; a heartbeat task
   refreshes ``heartbeat_at`` while the upload runs;
3. at the end, claim the sha256 (insert into ``<bucket>.sha256``). If the
   content is claimed by a visible file already, the upload is a duplicate:
   its chunks and record are deleted and the existing file is answered. If
   the claim belongs to an upload that is still finishing, wait for it; if
   to one that died, remove the stale claim and claim again;
4. insert the files document (the file becomes visible), then delete the
   pending record.

Any failure before step 4 (size limit, wrong sha256, client gone, database
error) deletes the upload's chunks, claim and pending record before the
error is answered. If the server itself dies, the pending record remains
with a heartbeat that stops advancing; :meth:`GridFSStore.sweep_abandoned_uploads`
(run at start and periodically) deletes the chunks and claim of every upload
whose heartbeat is older than ``pending_upload_stale_seconds`` and has no
files document, and forgets the record of one that does (it crashed after
step 4). Two identical uploads racing each other can both pass step 2 but
only one wins the claim, so only one becomes visible.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import datetime
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pymongo
from bson import Int64, ObjectId
from pymongo import errors as mongo_errors
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from dtpoc_common import errors, mongo
from dtpoc_common import logging as dlog
from dtpoc_files import domain, references

log = dlog.get_logger(__name__)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
UNREACHABLE_MESSAGE = "the files database cannot be reached; try again later"
#: How long a duplicate upload waits for an identical one that is finishing.
CLAIM_WAIT_SECONDS = 30.0
#: Chunks per read batch: bounds download memory to a few chunks.
READ_BATCH_CHUNKS = 4
#: Most chunks a download reads by point reads; longer reads use one cursor.
#: On FerretDB 1.x's SQLite backend a point read is pushed down but still a
#: table scan in SQLite (its plan says ``SCAN``), so k point reads cost k scans
#: of the chunks collection, while one ``{files_id, n}`` cursor costs one pass
#: decoded in FerretDB: a few point reads win for the small files replicas
#: write, one cursor wins for a large upload (a 200 MiB file is 800 chunks).
NAMED_READ_MAX_CHUNKS = 16


def chunk_id(file_id: ObjectId | str, n: int) -> str:
    """The ``_id`` of chunk ``n`` of a file this service wrote.

    GridFS readers find chunks by ``files_id`` and ``n`` and ignore ``_id``;
    this service names them so that reading chunk ``n`` is a point read.
    FerretDB 1.x on SQLite answers only ``{_id: <value>}`` from its index: a
    ``{files_id, n}`` query decodes every chunk of every file (the ``files_id``
    gap ``tests/files/test_ferretdb_support.py`` shows), so a download's cost
    grew with all the bytes stored. Files written by other GridFS writers
    keep ObjectId chunk ids and are read the old way.
    """
    return f"{file_id}:{n}"


class UploadAbandoned(Exception):
    """The client went away before the upload became visible; it is discarded."""


class CorruptFile(Exception):
    """A stored file's chunks do not add up to its length (not the caller's fault)."""


def database_errors() -> contextlib.AbstractContextManager[None]:
    """Answer UNAVAILABLE, with a message that says so, when MongoDB cannot be used."""
    return mongo.unavailable_on_failure("files", message=UNREACHABLE_MESSAGE)


def open_client(uri: str, *, timeout_ms: int) -> pymongo.AsyncMongoClient[dict[str, Any]]:
    """The shared client (:func:`dtpoc_common.mongo.open_client`) named ``dtpoc-files``."""
    return mongo.open_client(uri, timeout_ms=timeout_ms, appname="dtpoc-files")


def _now() -> datetime.datetime:
    # BSON dates have millisecond precision; truncate so that what we hold is
    # what a reader gets back (page tokens compare upload dates exactly).
    moment = datetime.datetime.now(tz=datetime.UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def record_from_document(document: Mapping[str, Any]) -> domain.FileRecord:
    """A files document as a :class:`~dtpoc_files.domain.FileRecord`."""
    metadata = document.get("metadata")
    upload_date = document.get("uploadDate")
    if not isinstance(upload_date, datetime.datetime):
        upload_date = _EPOCH
    return domain.FileRecord(
        file_id=str(document["_id"]),
        filename=str(document.get("filename") or ""),
        length=int(document.get("length") or 0),
        upload_date=upload_date,
        metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
        chunk_size=int(document.get("chunkSize") or 0),
    )


def _utc(moment: object) -> datetime.datetime:
    if not isinstance(moment, datetime.datetime):
        return _EPOCH
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


class _Pieces:
    """Cuts a range's bytes, chunk by chunk, into pieces of ``piece_bytes``.

    Only the bytes of one chunk and one piece are held at a time.
    """

    def __init__(self, *, length: int, piece_bytes: int) -> None:
        self.remaining = length
        self._piece_bytes = piece_bytes
        self._pending = bytearray()

    def take(self, data: memoryview) -> list[bytes]:
        """Add up to ``remaining`` bytes of ``data``; return the pieces now full."""
        taken = data[: self.remaining]
        self._pending += taken
        self.remaining -= len(taken)
        full = []
        while len(self._pending) >= self._piece_bytes:
            full.append(bytes(self._pending[: self._piece_bytes]))
            del self._pending[: self._piece_bytes]
        return full

    def rest(self) -> list[bytes]:
        """The last, shorter piece, if any bytes are left once the range is read."""
        return [bytes(self._pending)] if self._pending else []


@dataclasses.dataclass
class _Scan:
    """Where a cursor read of chunks stands: the next chunk, and how it asks for them."""

    next_n: int
    skip: int
    sorted_cursor: bool = False
    out_of_order: bool = False


class GridFSStore:
    """The files of one GridFS bucket, plus this service's upload bookkeeping."""

    def __init__(
        self,
        database: AsyncDatabase[dict[str, Any]],
        *,
        bucket: str,
        chunk_bytes: int,
        pending_stale_seconds: float,
    ) -> None:
        self._database = database
        self._bucket_name = bucket
        self._chunk_bytes = chunk_bytes
        self._pending_stale = datetime.timedelta(seconds=pending_stale_seconds)
        self.files: AsyncCollection[dict[str, Any]] = database[f"{bucket}.files"]
        self.chunks: AsyncCollection[dict[str, Any]] = database[f"{bucket}.chunks"]
        self.pending: AsyncCollection[dict[str, Any]] = database[f"{bucket}.pending_uploads"]
        self.claims: AsyncCollection[dict[str, Any]] = database[f"{bucket}.sha256"]
        self.book = references.ReferenceBook(database, bucket=bucket)
        self._indexes_ready = False
        self._index_lock = asyncio.Lock()
        #: Whether files another GridFS writer stored (no ``references`` mark)
        #: may exist: only then does an upload look for its content by
        #: ``metadata.sha256``, a query FerretDB answers by decoding every files
        #: document. Checked at start and by each sweep (see legacy_files_possible).
        self._legacy_files = True
        #: Other writers' outputs this process gave their first reference (each once).
        self._legacy_listed: set[ObjectId] = set()

    @property
    def legacy_files_possible(self) -> bool:
        return self._legacy_files

    async def _check_legacy_files(self) -> None:
        """One scan at start and per sweep, instead of one per upload."""
        found = await self.files.find_one(
            {references.MARK_FIELD: {"$exists": False}}, projection={"_id": 1}
        )
        self._legacy_files = found is not None

    async def _list_legacy_outputs(self) -> None:
        """Replica outputs another GridFS writer stored (the original's, labelled with
        ``service_id`` and ``replica_index``) get their first reference, and so their
        rows of the listings by service or replica, at start and at each sweep. The
        file stays unmarked (its content is still found by ``metadata.sha256``)."""
        if not self._legacy_files:
            return
        found = await self.files.find(
            {references.MARK_FIELD: {"$exists": False}},
            projection={"metadata": 1, "filename": 1, "uploadDate": 1},
        ).to_list()
        for document in found:
            if document["_id"] in self._legacy_listed:
                continue  # recorded by an earlier sweep: its reference and rows exist
            metadata = document.get("metadata")
            if isinstance(metadata, Mapping) and domain.output_reference(metadata) is not None:
                await self.book.record_first_of(document)
                self._legacy_listed.add(document["_id"])

    @property
    def pending_stale_after(self) -> datetime.timedelta:
        return self._pending_stale

    async def ensure_indexes(self) -> None:
        """Create the GridFS spec indexes and this service's own (idempotent)."""
        if self._indexes_ready:
            return
        async with self._index_lock:
            if self._indexes_ready:
                return
            with database_errors():
                # The two indexes the GridFS spec asks drivers to create.
                await self.chunks.create_index([("files_id", 1), ("n", 1)], unique=True)
                await self.files.create_index([("filename", 1), ("uploadDate", 1)])
                # Listing newest first, keyset pagination, dedup (a listing by
                # service or replica reads the references: see ReferenceBook).
                await self.files.create_index([("uploadDate", -1), ("_id", -1)])
                await self.files.create_index([("metadata.sha256", 1)])
                await self.claims.create_index([("file_id", 1)])
                await self.pending.create_index([("heartbeat_at", 1)])
                await self.book.ensure_indexes()
                indexed = await self.book.index_unlisted()
                if indexed:
                    log.info("output references given listing rows", references=indexed)
            await self._check_legacy_files()
            await self._list_legacy_outputs()
            self._indexes_ready = True

    async def get(self, file_id: str) -> domain.FileRecord:
        """The record of a visible file, or NOT_FOUND."""
        with database_errors():
            document = await self.files.find_one({"_id": ObjectId(file_id)})
        if document is None:
            raise errors.NotFound(f"file {file_id} does not exist", field="file_id")
        return record_from_document(document)

    async def list(self, query: domain.ListQuery) -> tuple[list[domain.FileRecord], bool]:
        """One page of records, newest first, and whether more follow.

        By service or replica, one row per recorded output, from the output
        references (:meth:`_list_outputs`); otherwise one row per stored file.
        """
        if query.filter.by_output:
            return await self._list_outputs(query)
        selector: dict[str, Any] = {}
        if query.filter.filename is not None:
            selector["filename"] = query.filter.filename
        if query.after is not None:
            after_id = ObjectId(query.after.file_id)
            selector["$or"] = [
                {"uploadDate": {"$lt": query.after.upload_date}},
                {"uploadDate": query.after.upload_date, "_id": {"$lt": after_id}},
            ]
        cursor = (
            self.files.find(selector)
            .sort([("uploadDate", -1), ("_id", -1)])
            .skip(query.skip)
            .limit(query.limit + 1)
        )
        with database_errors():
            documents = await cursor.to_list()
        records = [record_from_document(doc) for doc in documents[: query.limit]]
        return records, len(documents) > query.limit

    async def _list_outputs(
        self, query: domain.ListQuery
    ) -> tuple[builtins.list[domain.FileRecord], bool]:
        """One page of output rows (:func:`dtpoc_files.domain.output_row`), newest first.

        Walks the listing's numbered rows from the page token's position
        (:mod:`dtpoc_files.output_rows`) and reads each row's reference and
        stored file by ``_id`` (the file once per page): point reads, the only
        queries FerretDB 1.x pushes down. A reference whose file is not visible
        (its first upload is finishing, or its delete was committed) is no row.
        """
        rows: builtins.list[domain.FileRecord] = []
        skip = query.skip
        files: dict[str, domain.FileRecord | None] = {}
        before = query.after.row if query.after is not None else None
        with database_errors():
            async for n, document in self.book.listed(query.filter, before=before):
                row = await self._output_row(document, files, n)
                if row is None or query.filter.filename not in (None, row.filename):
                    continue
                if skip > 0:
                    skip -= 1
                    continue
                rows.append(row)
                if len(rows) > query.limit:
                    break
        return rows[: query.limit], len(rows) > query.limit

    async def _output_row(
        self, document: Mapping[str, Any], files: dict[str, domain.FileRecord | None], n: int
    ) -> domain.FileRecord | None:
        output = references.output_of(document)
        file_id = str(document.get("file_id") or "")
        if output is None or not domain.is_file_id(file_id):
            return None
        if file_id not in files:
            found = await self.files.find_one({"_id": ObjectId(file_id)})
            files[file_id] = record_from_document(found) if found is not None else None
        stored = files[file_id]
        if stored is None:
            return None
        return domain.output_row(stored, row=n, output=output, recorded_at=_utc(document.get("at")))

    async def read_range(
        self, record: domain.FileRecord, byte_range: domain.ByteRange, *, piece_bytes: int
    ) -> AsyncIterator[bytes]:
        """The bytes of ``byte_range`` in pieces of ``piece_bytes`` (the last may be shorter).

        A short range of a file this service wrote is read by point reads of
        its chunks' ids; any other by a cursor from the chunk holding
        ``offset`` on (:meth:`_read_scanned`).
        """
        if byte_range.length == 0:
            return
        chunk_size = record.chunk_size
        if chunk_size <= 0:
            raise CorruptFile(f"file {record.file_id} has no chunk size")
        first = byte_range.offset // chunk_size
        skip = byte_range.offset - first * chunk_size
        last = (byte_range.offset + byte_range.length - 1) // chunk_size
        pieces = _Pieces(length=byte_range.length, piece_bytes=piece_bytes)
        oid = ObjectId(record.file_id)
        if last - first < NAMED_READ_MAX_CHUNKS and await self._named_chunks(oid, first):
            chunks = self._read_named(record, first=first, last=last, skip=skip, pieces=pieces)
        else:
            chunks = self._read_scanned(record, scan=_Scan(next_n=first, skip=skip), pieces=pieces)
        async for piece in chunks:
            yield piece
        if pieces.remaining > 0:
            raise CorruptFile(
                f"file {record.file_id}: chunks end {pieces.remaining} bytes before its length"
            )
        for piece in pieces.rest():
            yield piece

    async def _named_chunks(self, oid: ObjectId, n: int) -> bool:
        """Whether the file's chunks carry :func:`chunk_id` ids (written by this service)."""
        with database_errors():
            found = await self.chunks.find_one({"_id": chunk_id(oid, n)}, projection={"_id": 1})
        return found is not None

    async def _read_named(
        self, record: domain.FileRecord, *, first: int, last: int, skip: int, pieces: _Pieces
    ) -> AsyncIterator[bytes]:
        """Chunks by point reads, ``READ_BATCH_CHUNKS`` at a time (memory: a few chunks)."""
        oid = ObjectId(record.file_id)
        for start in range(first, last + 1, READ_BATCH_CHUNKS):
            numbers = range(start, min(start + READ_BATCH_CHUNKS, last + 1))
            with database_errors():
                chunks = await asyncio.gather(
                    *(
                        self.chunks.find_one({"_id": chunk_id(oid, n)}, projection={"data": 1})
                        for n in numbers
                    )
                )
            for n, chunk in zip(numbers, chunks, strict=True):
                if chunk is None:
                    raise CorruptFile(f"file {record.file_id}: chunk {n} is missing")
                for piece in pieces.take(memoryview(chunk["data"])[skip if n == first else 0 :]):
                    yield piece

    async def _read_scanned(
        self, record: domain.FileRecord, *, scan: _Scan, pieces: _Pieces
    ) -> AsyncIterator[bytes]:
        """Chunks by a cursor, a few per batch, until the range is read or the chunks end.

        Chunks are asked for without a sort (FerretDB sorts a whole file in
        memory) and checked to arrive in order; should a server answer them
        out of order, or end early, the read continues with a sorted cursor
        from there.
        """
        while pieces.remaining > 0:
            scan.out_of_order = False
            async for piece in self._scan_pass(record, scan=scan, pieces=pieces):
                yield piece
            if pieces.remaining > 0 and not scan.out_of_order:
                if scan.sorted_cursor:
                    return  # the chunks end before the file's length
                scan.sorted_cursor = True

    async def _scan_pass(
        self, record: domain.FileRecord, *, scan: _Scan, pieces: _Pieces
    ) -> AsyncIterator[bytes]:
        """One cursor from chunk ``scan.next_n`` on; stops at the first chunk out of order."""
        cursor = self.chunks.find(
            {"files_id": ObjectId(record.file_id), "n": {"$gte": scan.next_n}},
            projection={"_id": 0, "n": 1, "data": 1},
            sort=[("n", 1)] if scan.sorted_cursor else None,
            batch_size=READ_BATCH_CHUNKS,
        )
        try:
            with database_errors():
                async for chunk in cursor:
                    if chunk["n"] != scan.next_n:
                        if scan.sorted_cursor:
                            raise CorruptFile(
                                f"file {record.file_id}: chunk {scan.next_n} is missing"
                            )
                        if chunk["n"] < scan.next_n:
                            continue
                        scan.out_of_order = scan.sorted_cursor = True
                        return
                    data = memoryview(chunk["data"])[scan.skip :]
                    scan.skip = 0
                    scan.next_n += 1
                    for piece in pieces.take(data):
                        yield piece
                    if pieces.remaining == 0:
                        return
        finally:
            await cursor.close()

    async def references(self, file_id: str) -> domain.References:
        """Who holds a visible file; NOT_FOUND if absent or its deletion is committed."""
        with database_errors():
            return await self.book.read(file_id)

    async def add_reference(self, file_id: str, output: domain.OutputReference | None) -> bool:
        """One more upload (or a recorded output) holds the file; False if it is gone."""
        with database_errors():
            if await self.book.add(file_id, output):
                return True
            await self._finish_deletion(file_id)
        return False

    async def announce_mount(self, file_id: str) -> domain.FileRecord:
        """A launch will mount the file (see :mod:`dtpoc_files.references`); NOT_FOUND if absent."""
        with database_errors():
            announced = await self.book.announce_mount(file_id)
            if not announced:
                await self._finish_deletion(file_id)
        if not announced:
            raise errors.NotFound(f"file {file_id} does not exist", field="file_id")
        return await self.get(file_id)

    async def drop_upload_reference(self, reference_id: str) -> bool:
        """Remove one upload reference; True for exactly one of racing callers."""
        with database_errors():
            return await self.book.drop(reference_id)

    async def delete_if_unchanged(self, file_id: str, *, generation: int) -> bool:
        """Delete a visible file if nothing changed since ``generation`` (no new
        reference, no announced mount): commit the delete, then remove the files
        document, its chunks, its content claim and its references."""
        with database_errors():
            if not await self.book.commit_delete(file_id, generation=generation):
                return False
            await self._finish_deletion(file_id)
        return True

    async def _finish_deletion(self, file_id: str) -> None:
        """Remove what a committed delete leaves (idempotent; the sweep repeats it)."""
        oid = ObjectId(file_id)
        document = await self.files.find_one({"_id": oid})
        await self.files.delete_one({"_id": oid})
        await self._delete_chunks(oid, document)
        await self.claims.delete_many({"file_id": oid})
        await self.book.forget(file_id)

    async def _delete_chunks(self, oid: ObjectId, document: Mapping[str, Any] | None) -> None:
        """Point deletes for named chunks; the ``files_id`` scan only for other writers' files."""
        if document is not None and int(document.get("chunkSize") or 0) > 0:
            length = int(document.get("length") or 0)
            count = -(-length // int(document["chunkSize"]))
            first = await self.chunks.delete_one({"_id": chunk_id(oid, 0)})
            if first.deleted_count == 1 or length == 0:
                for n in range(1, count):
                    await self.chunks.delete_one({"_id": chunk_id(oid, n)})
                return
        await self.chunks.delete_many({"files_id": oid})

    async def finish_interrupted_deletions(self) -> int:
        """Finish deletes whose server died after committing them; answer how many."""
        with database_errors():
            pending = await self.book.interrupted_deletions()
            for file_id in pending:
                await self._finish_deletion(file_id)
        return len(pending)

    async def begin_upload(self, *, filename: str) -> PendingUpload:
        """Register a new upload (not visible) that chunks can be written to."""
        await self.ensure_indexes()
        upload = PendingUpload(self, file_id=ObjectId(), chunk_bytes=self._chunk_bytes)
        now = _now()
        with database_errors():
            await self.pending.insert_one(
                {
                    "_id": upload.file_id,
                    "filename": filename,
                    "started_at": now,
                    "heartbeat_at": now,
                }
            )
        upload.start_heartbeat(interval=max(1.0, self._pending_stale.total_seconds() / 4))
        return upload

    async def is_upload_alive(self, file_id: ObjectId) -> bool:
        """Whether an upload's server still beats its heartbeat."""
        record = await self.pending.find_one({"_id": file_id})
        if record is None:
            return False
        beat = record.get("heartbeat_at")
        return isinstance(beat, datetime.datetime) and _now() - beat < self._pending_stale

    async def sweep_abandoned_uploads(self) -> int:
        """Remove what uploads of crashed servers left behind; answer how many."""
        await self.ensure_indexes()
        cutoff = _now() - self._pending_stale
        swept = 0
        with database_errors():
            if not self._legacy_files:
                await self._check_legacy_files()
            await self._list_legacy_outputs()
            stale = await self.pending.find({"heartbeat_at": {"$lt": cutoff}}).to_list()
            for record in stale:
                file_id = record["_id"]
                if await self.files.find_one({"_id": file_id}, projection={"_id": 1}) is None:
                    await self.chunks.delete_many({"files_id": file_id})
                    await self.claims.delete_many({"file_id": file_id})
                    await self.book.references.delete_many({"file_id": str(file_id)})
                    log.info("abandoned upload removed", file_id=str(file_id))
                await self.pending.delete_one({"_id": file_id, "heartbeat_at": {"$lt": cutoff}})
                swept += 1
        return swept


class PendingUpload:
    """An upload in progress: chunks written so far, not visible to anyone.

    Holds at most one partial chunk and one message's worth of chunks being
    inserted between writes; :meth:`commit` waits for every insert.
    """

    def __init__(self, store: GridFSStore, *, file_id: ObjectId, chunk_bytes: int) -> None:
        self._store = store
        self.file_id = file_id
        self._chunk_bytes = chunk_bytes
        self._buffer = bytearray()
        self._next_n = 0
        #: What this upload wrote besides chunks, so that discard deletes those by ``_id``
        #: (a ``{file_id}`` filter is a scan of the whole collection on FerretDB 1.x): the
        #: content it claimed, whether it wrote its first reference, whether its files
        #: document may exist (then others may hold it: every reference goes, as before).
        self._claimed: str | None = None
        self._recorded_first = False
        self._visible = False
        self._heartbeat: asyncio.Task[None] | None = None
        self._inflight: asyncio.Future[Any] | None = None

    def start_heartbeat(self, *, interval: float) -> None:
        self._heartbeat = asyncio.create_task(self._beat(interval))

    async def _beat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self._store.pending.update_one(
                    {"_id": self.file_id}, {"$set": {"heartbeat_at": _now()}}
                )
            except mongo_errors.PyMongoError as exc:
                log.warning(
                    "upload heartbeat failed", file_id=str(self.file_id), error=type(exc).__name__
                )

    async def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None

    async def write(self, data: bytes) -> None:
        """Store ``data`` after what was written before."""
        self._buffer += data
        size = self._chunk_bytes
        if len(self._buffer) < size:
            return
        full = len(self._buffer) // size * size
        documents = [
            self._chunk_document(bytes(self._buffer[start : start + size]))
            for start in range(0, full, size)
        ]
        del self._buffer[:full]
        # Write-behind, one insert deep: this insert runs while the next
        # message arrives, and the next write waits for it first (order kept,
        # memory bounded by one message in flight plus one arriving).
        await self._wait_for_inflight()
        self._inflight = asyncio.ensure_future(
            self._store.chunks.insert_many(documents, ordered=True)
        )

    async def _wait_for_inflight(self) -> None:
        """Wait for the chunk insert in flight; raise its error if it failed.

        Shielded: a client that goes away cancels the caller, but an insert
        already sent must be waited for, or it could land after
        :meth:`discard` deleted the chunks and leave orphans.
        """
        if self._inflight is None:
            return
        with database_errors():
            await asyncio.shield(self._inflight)
        self._inflight = None

    def _chunk_document(self, data: bytes) -> dict[str, Any]:
        document = {
            "_id": chunk_id(self.file_id, self._next_n),
            "files_id": self.file_id,
            "n": self._next_n,
            "data": data,
        }
        self._next_n += 1
        return document

    async def commit(
        self, upload: domain.VerifiedUpload, *, still_wanted: Callable[[], bool] = lambda: True
    ) -> domain.UploadOutcome:
        """Make the upload visible, or answer the identical file already stored.

        The caller discards the upload if this raises, and does not cancel it
        half-way (a files document inserted after a discard would be a file
        without its claim).
        """
        await self._wait_for_inflight()
        with database_errors():
            if self._buffer:
                await self._store.chunks.insert_one(self._chunk_document(bytes(self._buffer)))
                self._buffer.clear()
            existing = await self._claim_or_reference(
                upload.output, upload.digest.sha256, still_wanted
            )
            if existing is not None:
                await self.discard()
                return domain.UploadOutcome(record=existing, deduplicated=True)
            if not still_wanted():
                # Checked last, after the database round trips above, so that
                # a client's cancel has had every chance to arrive.
                raise UploadAbandoned(f"upload {self.file_id} was abandoned by its client")
            uploaded = _now()
            document = {
                "_id": self.file_id,
                "length": Int64(upload.digest.length),
                "chunkSize": self._chunk_bytes,
                "uploadDate": uploaded,
                "filename": upload.filename,
                "metadata": dict(upload.metadata),
                references.MARK_FIELD: references.MARK_VERSION,
            }
            self._recorded_first = True  # before the call: it may write and then raise
            await self._store.book.record_first(
                str(self.file_id), upload.metadata, filename=upload.filename, at=uploaded
            )
            self._visible = True
            await self._store.files.insert_one(document)
            await self._stop_heartbeat()
            await self._store.pending.delete_one({"_id": self.file_id})
        return domain.UploadOutcome(record=record_from_document(document), deduplicated=False)

    async def _claim_or_reference(
        self,
        output: domain.OutputReference | None,
        sha256: str,
        still_wanted: Callable[[], bool],
    ) -> domain.FileRecord | None:
        """Claim the content, or add this upload's reference to the file holding it.

        The reference is added before the existing id is answered, so a
        delete running at the same moment either removed the file first (the
        claim is then made afresh) or sees one more reference.
        """
        while True:
            existing = await self._claim(sha256)
            if existing is None:
                return None
            if not still_wanted():
                raise UploadAbandoned(f"upload {self.file_id} was abandoned by its client")
            if await self._store.add_reference(existing.file_id, output):
                return existing

    async def _claim(self, sha256: str) -> domain.FileRecord | None:
        """Claim the content for this upload; answer the existing file if it is taken."""
        store = self._store
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLAIM_WAIT_SECONDS
        while True:
            claim = await store.claims.find_one({"_id": sha256})
            if claim is not None:
                owner = claim["file_id"]
                existing = await store.files.find_one({"_id": owner})
                if existing is not None:
                    return record_from_document(existing)
                if await store.is_upload_alive(owner):
                    # An identical upload claimed first and is finishing.
                    if loop.time() > deadline:
                        raise errors.Aborted(
                            "an identical upload is still being stored; retry shortly"
                        )
                    await asyncio.sleep(0.05)
                    continue
                await store.claims.delete_one({"_id": sha256, "file_id": owner})
                continue
            legacy = (
                await store.files.find_one({"metadata.sha256": sha256})
                if store.legacy_files_possible
                else None
            )
            if legacy is None:
                self._claimed = sha256  # before the insert: it may be applied and then raise
            try:
                await store.claims.insert_one(
                    {
                        "_id": sha256,
                        "file_id": legacy["_id"] if legacy is not None else self.file_id,
                        "claimed_at": _now(),
                    }
                )
            except mongo_errors.DuplicateKeyError:
                self._claimed = None  # not written: another upload holds the claim
                continue
            return record_from_document(legacy) if legacy is not None else None

    async def _discard_claim_and_references(self) -> None:
        """Delete this upload's claim and references: by ``_id`` when it never became
        visible (a deduplicated upload, the common case, wrote neither), else every one
        naming it, as a visible file may have gained others' references meanwhile."""
        store = self._store
        if self._visible:
            await store.claims.delete_many({"file_id": self.file_id})
            await store.book.references.delete_many({"file_id": str(self.file_id)})
            return
        if self._claimed is not None:
            # Only if still ours: a sweep may have given the content to another upload.
            await store.claims.delete_one({"_id": self._claimed, "file_id": self.file_id})
        if self._recorded_first:
            await store.book.references.delete_one(
                {"_id": references.first_reference_id(str(self.file_id))}
            )

    async def discard(self) -> None:
        """Delete everything this upload stored; safe to call more than once.

        Waits for a chunk insert still in flight first. If an insert failed
        (its outcome unknown: the server may still apply it), the pending
        record is kept and marked stale instead of deleted, so that the sweep
        looks at this upload again later.
        """
        await self._stop_heartbeat()
        self._buffer.clear()
        outcome_unknown = False
        if self._inflight is not None:
            try:
                await self._inflight
            except mongo_errors.PyMongoError:
                outcome_unknown = True
            self._inflight = None
        store = self._store
        with database_errors():
            await store.files.delete_one({"_id": self.file_id})
            # Its own chunks are named (chunk_id): point deletes, no scan of the chunks.
            for n in range(self._next_n):
                await store.chunks.delete_one({"_id": chunk_id(self.file_id, n)})
            await self._discard_claim_and_references()
            if outcome_unknown:
                await store.pending.update_one(
                    {"_id": self.file_id}, {"$set": {"heartbeat_at": _EPOCH}}
                )
            else:
                await store.pending.delete_one({"_id": self.file_id})
