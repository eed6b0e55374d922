"""The Files service's use cases, between the gRPC edge and the adapters.

Each method is one thing a client can ask for. The rules come from
:mod:`dtpoc_files.domain`; the storage and the "who mounts this file" answer
come through the ports of :mod:`dtpoc_files.ports` (GridFS and the
orchestrator in production, :mod:`dtpoc_files.memory` in the unit tier).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from google.rpc import error_details_pb2  # type: ignore[import-untyped]

from dtpoc_common import errors
from dtpoc_common import logging as dlog
from dtpoc_files import domain, gridfs_store, ports

log = dlog.get_logger(__name__)

T = TypeVar("T")

#: Download pieces read ahead of the one being sent (each ``download_chunk_bytes``).
DOWNLOAD_READ_AHEAD = 2
#: Times a delete decides again when its file changed under it before it gives up.
DELETE_ATTEMPTS = 8
#: ``PreconditionFailure`` violation types of a refused delete.
MOUNTED_VIOLATION = "MOUNTED"
OUTPUT_VIOLATION = "OUTPUT"


@dataclass(frozen=True)
class DeleteOutcome:
    """What a delete did: the file is gone, or one reference of it."""

    message: str
    deleted: bool


@dataclass(frozen=True)
class Download:
    """A download about to stream: the file's record, the range, and its bytes."""

    record: domain.FileRecord
    byte_range: domain.ByteRange
    pieces: AsyncIterator[bytes]


@dataclass(frozen=True)
class Page:
    """One page of a listing."""

    records: list[domain.FileRecord]
    next_page_token: str


class FilesService:
    """Stores, serves, lists and deletes files."""

    def __init__(
        self,
        store: ports.FileStore,
        file_usage: ports.FileUsage,
        *,
        max_upload_bytes: int,
        download_piece_bytes: int,
    ) -> None:
        self._store = store
        self._usage = file_usage
        self.max_upload_bytes = max_upload_bytes
        self._piece_bytes = download_piece_bytes
        # Discards and commits run as tasks of their own, so that a cancelled
        # upload (the client went away) still finishes what it started.
        self._tasks: set[asyncio.Task[Any]] = set()

    async def upload(
        self,
        header: domain.UploadHeader,
        content: AsyncIterator[bytes],
        *,
        still_wanted: Callable[[], bool] = lambda: True,
    ) -> domain.UploadOutcome:
        """Store ``content`` as it arrives; nothing is visible unless all of it arrived intact.

        ``content`` raising (a malformed stream) or being cancelled (the client
        disconnected) discards everything stored so far, as do a size over the
        limit, a digest or length other than the header promised, and
        ``still_wanted()`` turning false before the file became visible.
        """
        digest = domain.ContentDigest(max_bytes=self.max_upload_bytes)
        upload = await self._begin(header)
        try:
            async for data in content:
                digest.update(data)
                await upload.write(data)
            final = digest.finish(header)
        except BaseException as exc:
            await self._discard(upload, reason=exc, received=digest.length)
            raise
        # The stream ended. grpc-python's asyncio server ends the request
        # stream normally when the client *cancels*, and cancels this task
        # only a moment later; so the commit runs as a task of its own (never
        # left half-done) that makes the file visible only if this task was
        # not cancelled by then (and ``still_wanted`` agrees).
        gone = asyncio.Event()

        def wanted() -> bool:
            return not gone.is_set() and still_wanted()

        commit = self._background(self._commit_or_discard(upload, header, final, wanted))
        try:
            outcome = await asyncio.shield(commit)
        except asyncio.CancelledError:
            gone.set()
            raise
        except gridfs_store.UploadAbandoned as exc:
            raise errors.Aborted(
                "the upload was cancelled before it completed; nothing was stored"
            ) from exc
        record = outcome.record
        log.info(
            "file deduplicated" if outcome.deduplicated else "file uploaded",
            **_file_fields(record),
            deduplicated=outcome.deduplicated,
            **_labels(header),
        )
        return outcome

    async def _begin(self, header: domain.UploadHeader) -> ports.PendingUpload:
        """Register the upload; if the client goes away meanwhile, undo it once registered."""
        begin = self._background(self._store.begin_upload(filename=header.filename))
        try:
            return await asyncio.shield(begin)
        except asyncio.CancelledError:
            begin.add_done_callback(self._discard_if_begun)
            raise

    def _discard_if_begun(self, begin: asyncio.Task[ports.PendingUpload]) -> None:
        if begin.cancelled() or begin.exception() is not None:
            return
        self._background(self._discard(begin.result(), reason=asyncio.CancelledError(), received=0))

    def _background(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """A task that finishes even if its awaiter is cancelled (kept until done)."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _commit_or_discard(
        self,
        upload: ports.PendingUpload,
        header: domain.UploadHeader,
        digest: domain.Digest,
        still_wanted: Callable[[], bool],
    ) -> domain.UploadOutcome:
        try:
            verified = domain.VerifiedUpload(
                filename=header.filename,
                metadata=domain.stored_metadata(header, digest),
                digest=digest,
            )
            return await upload.commit(verified, still_wanted=still_wanted)
        except BaseException as exc:
            await self._discard(upload, reason=exc, received=digest.length)
            raise

    async def _discard(
        self, upload: ports.PendingUpload, *, reason: BaseException, received: int
    ) -> None:
        cleanup = self._background(upload.discard())
        outcome = "discarded"
        try:
            await asyncio.shield(cleanup)
        except asyncio.CancelledError:
            # Cancelled while waiting: the shielded task still finishes.
            outcome = "discard continues in background"
        except errors.Unavailable:
            outcome = "discard failed; the sweep removes it"
        log.info(
            "upload abandoned",
            file_id=str(upload.file_id),
            received=received,
            reason=_reason(reason),
            cleanup=outcome,
        )

    async def drain(self) -> None:
        """Wait for commits and discards still running (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def info(self, file_id: str) -> domain.FileRecord:
        return await self._store.get(domain.parse_file_id(file_id))

    async def download(self, file_id: str, *, offset: int, length: int) -> Download:
        """Resolve the file and range now (errors before any byte), stream later."""
        record = await self._store.get(domain.parse_file_id(file_id))
        byte_range = domain.byte_range(size=record.length, offset=offset, length=length)
        return Download(
            record=record,
            byte_range=byte_range,
            pieces=self._pieces(record, byte_range),
        )

    async def _pieces(
        self, record: domain.FileRecord, byte_range: domain.ByteRange
    ) -> AsyncIterator[bytes]:
        pieces = self._store.read_range(record, byte_range, piece_bytes=self._piece_bytes)
        try:
            async for piece in read_ahead(pieces, depth=DOWNLOAD_READ_AHEAD):
                yield piece
        except gridfs_store.CorruptFile:
            # Deleted while it was being read is the caller's business; a
            # broken file is ours (INTERNAL, logged by the interceptor).
            try:
                await self._store.get(record.file_id)
            except errors.NotFound as exc:
                raise errors.NotFound(
                    f"file {record.file_id} was deleted during the download", field="file_id"
                ) from exc
            raise

    async def list(self, query: domain.ListQuery) -> Page:
        records, more = await self._store.list(query)
        token = ""
        if more and records:
            last = records[-1]
            token = domain.encode_page_token(
                domain.PagePosition(
                    upload_date=last.upload_date,
                    file_id=last.file_id,
                    row=last.row,
                ),
                query.filter,
            )
        return Page(records=records, next_page_token=token)

    async def prepare_mount(self, file_id: str) -> domain.FileRecord:
        """A launch will mount the file: confirm it exists; make racing deletes look again."""
        return await self._store.announce_mount(domain.parse_file_id(file_id))

    async def delete(self, file_id: str, *, force: bool) -> DeleteOutcome:
        """Remove one reference, and the file with its last one (see ``DeleteFile``).

        Each attempt decides on the references it read; removing an upload
        reference is a delete by id (one winner), deleting the file a
        compare-and-set on its generation, so an upload, a recorded output or
        a launch's mount announced in between makes it decide again.
        """
        record = await self._store.get(domain.parse_file_id(file_id))
        dropped = False
        for _attempt in range(DELETE_ATTEMPTS):
            try:
                references = await self._store.references(record.file_id)
            except errors.NotFound:
                if not dropped:
                    raise
                # Ours was not the last reference (a delete drops one only while
                # others hold the file): a delete racing ours removed the last one.
                return self._kept(record, domain.References(uploads=(), outputs=(), generation=0))
            if dropped and (references.uploads or references.outputs):
                return self._kept(record, references)
            if not dropped:
                plan = domain.plan_delete(references)
                if plan == domain.REFUSE_OUTPUT:
                    raise in_use(record.file_id, mounted=[], outputs=references.output_service_ids)
                if plan == domain.DROP_UPLOAD:
                    dropped = await self._store.drop_upload_reference(references.uploads[-1])
                    continue
            if not force:
                active = await self._usage.active_service_ids(record.file_id)
                if active and dropped:
                    return self._kept(record, references)
                if active:
                    raise in_use(record.file_id, mounted=active, outputs=[])
            if await self._store.delete_if_unchanged(
                record.file_id, generation=references.generation
            ):
                log.info("file deleted", **_file_fields(record), forced=force)
                return DeleteOutcome(message=f"File {record.file_id} deleted", deleted=True)
        raise errors.Aborted(
            f"file {record.file_id} kept changing while it was being deleted (new uploads or "
            "launches mounting it); nothing was deleted. Retry"
        )

    @staticmethod
    def _kept(record: domain.FileRecord, after: domain.References) -> DeleteOutcome:
        log.info(
            "file reference removed",
            file_id=record.file_id,
            uploads=len(after.uploads),
            output_services=after.output_service_ids,
        )
        return DeleteOutcome(message=domain.kept_message(record.file_id, after), deleted=False)


def _held_by(
    kind: str, service_id: str, description: str
) -> error_details_pb2.PreconditionFailure.Violation:
    """One service holding the file, as the violation a client reads (``services/<id>``)."""
    return error_details_pb2.PreconditionFailure.Violation(
        type=kind, subject=f"services/{service_id}", description=description
    )


def in_use(file_id: str, *, mounted: list[str], outputs: list[str]) -> errors.InUse:
    """The refusal of a delete, naming the services that hold the file."""
    parts = []
    violations = []
    if mounted:
        parts.append(
            f"mounted by services that are not terminated: {', '.join(sorted(mounted))} "
            "(terminate them first, or delete with force)"
        )
        violations += [
            _held_by(MOUNTED_VIOLATION, sid, f"service {sid} mounts the file as an input")
            for sid in sorted(mounted)
        ]
    if outputs:
        parts.append(
            f"recorded as an output of services {', '.join(outputs)} "
            "(recorded outputs are never deleted, not even with force)"
        )
        violations += [
            _held_by(
                OUTPUT_VIOLATION, sid, f"a replica of service {sid} recorded the file as its output"
            )
            for sid in outputs
        ]
    return errors.InUse(
        f"file {file_id} is still used: {'; '.join(parts)}; nothing was deleted",
        details=[error_details_pb2.PreconditionFailure(violations=violations)],
    )


class _Failed:
    """What the fetcher of :func:`read_ahead` hands over instead of an item when it fails."""

    def __init__(self, error: Exception) -> None:
        self.error = error


_END = object()


async def read_ahead(source: AsyncIterator[T], *, depth: int) -> AsyncIterator[T]:
    """``source``'s items, fetched up to ``depth`` ahead by a task of their own.

    Lets the database read of the next pieces overlap with sending this one
    to the client, with at most ``depth`` pieces held. Closing the result
    (the client went away) stops the fetching.
    """
    queue: asyncio.Queue[object] = asyncio.Queue(depth)

    async def fetch() -> None:
        try:
            async for item in source:
                await queue.put(item)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, who raises it
            await queue.put(_Failed(exc))
        else:
            await queue.put(_END)

    fetcher = asyncio.create_task(fetch())
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield cast(T, item)
    finally:
        fetcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fetcher
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


def _file_fields(record: domain.FileRecord) -> dict[str, object]:
    """A stored file as the upload and delete log lines name it."""
    return {
        "file_id": record.file_id,
        "filename": record.filename,
        "size": record.length,
        "sha256": record.sha256,
    }


def _labels(header: domain.UploadHeader) -> dict[str, object]:
    return {
        key: header.metadata[key]
        for key in ("service_id", "replica_index")
        if key in header.metadata
    }


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError | gridfs_store.UploadAbandoned):
        return "client disconnected"
    if isinstance(exc, errors.DomainError):
        return f"{type(exc).__name__}: {exc.message}"
    return type(exc).__name__
