"""The Files service's use cases, between the gRPC edge and the adapters.

Each method is one thing a client can ask for. The rules come from
:mod:`dtpoc_files.domain`, the storage from :mod:`dtpoc_files.gridfs_store`
and the "who mounts this file" answer from :mod:`dtpoc_files.usage`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from dtpoc_common import errors
from dtpoc_common import logging as dlog
from dtpoc_files import domain, gridfs_store, usage

log = dlog.get_logger(__name__)

T = TypeVar("T")

#: Download pieces read ahead of the one being sent (each ``download_chunk_bytes``).
DOWNLOAD_READ_AHEAD = 2


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
        store: gridfs_store.GridFSStore,
        file_usage: usage.FileUsage,
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
            file_id=record.file_id,
            filename=record.filename,
            size=record.length,
            sha256=record.sha256,
            deduplicated=outcome.deduplicated,
            **_labels(header),
        )
        return outcome

    async def _begin(self, header: domain.UploadHeader) -> gridfs_store.PendingUpload:
        """Register the upload; if the client goes away meanwhile, undo it once registered."""
        begin = self._background(self._store.begin_upload(filename=header.filename))
        try:
            return await asyncio.shield(begin)
        except asyncio.CancelledError:
            begin.add_done_callback(self._discard_if_begun)
            raise

    def _discard_if_begun(self, begin: asyncio.Task[gridfs_store.PendingUpload]) -> None:
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
        upload: gridfs_store.PendingUpload,
        header: domain.UploadHeader,
        digest: domain.Digest,
        still_wanted: Callable[[], bool],
    ) -> domain.UploadOutcome:
        try:
            return await upload.commit(
                filename=header.filename,
                metadata=domain.stored_metadata(header, digest),
                digest=digest,
                still_wanted=still_wanted,
            )
        except BaseException as exc:
            await self._discard(upload, reason=exc, received=digest.length)
            raise

    async def _discard(
        self, upload: gridfs_store.PendingUpload, *, reason: BaseException, received: int
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
                domain.PagePosition(upload_date=last.upload_date, file_id=last.file_id),
                query.filter,
            )
        return Page(records=records, next_page_token=token)

    async def delete(self, file_id: str, *, force: bool) -> str:
        """Delete a file unless a service that is not terminated mounts it (or ``force``)."""
        record = await self._store.get(domain.parse_file_id(file_id))
        if not force:
            active = await self._usage.active_service_ids(record.file_id)
            if active:
                raise errors.FailedPrecondition(
                    f"file {record.file_id} is mounted by services that are not terminated: "
                    f"{', '.join(sorted(active))}; terminate them first or delete with force"
                )
        await self._store.delete(record.file_id)
        log.info(
            "file deleted",
            file_id=record.file_id,
            filename=record.filename,
            size=record.length,
            sha256=record.sha256,
            forced=force,
        )
        return f"File {record.file_id} deleted"


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
