"""Assembles the Files service: settings in, gRPC registrations and a cleanup out.

Starting never waits for the database: the server comes up (and answers
UNAVAILABLE with a clear message while MongoDB cannot be reached), and a
background task creates the indexes and sweeps abandoned uploads once it
can, then keeps sweeping periodically (see :mod:`dtpoc_files.gridfs_store`
for why).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from dtpoc.files.v1alpha1 import files_pb2_grpc
from dtpoc_common import errors
from dtpoc_common import logging as dlog
from dtpoc_common.grpcserver import Registration
from dtpoc_files import gridfs_store, service, servicer, usage
from dtpoc_files.settings import FilesSettings

log = dlog.get_logger(__name__)

#: Seconds between attempts while the database cannot be reached at start.
STARTUP_RETRY_SECONDS = 5.0

Cleanup = Callable[[], Awaitable[None]]


async def build(settings: FilesSettings) -> tuple[list[Registration], Cleanup]:
    """The servicer to register and the coroutine that releases its resources."""
    client = gridfs_store.open_client(settings.mongodb_uri, timeout_ms=settings.mongodb_timeout_ms)
    store = gridfs_store.GridFSStore(
        client[settings.database],
        bucket=settings.bucket,
        chunk_bytes=settings.gridfs_chunk_bytes,
        pending_stale_seconds=settings.pending_upload_stale_seconds,
    )
    file_usage = usage.from_settings(settings)
    files = service.FilesService(
        store,
        file_usage,
        max_upload_bytes=settings.max_upload_bytes,
        download_piece_bytes=settings.download_chunk_bytes,
    )
    maintenance = asyncio.create_task(
        _maintain(store, interval=settings.sweep_interval_seconds), name="files-maintenance"
    )
    log.info(
        "files service configured",
        database=settings.database,
        bucket=settings.bucket,
        max_upload_bytes=settings.max_upload_bytes,
        usage_check=type(file_usage).__name__,
    )

    async def cleanup() -> None:
        maintenance.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await maintenance
        await files.drain()
        await file_usage.close()
        await client.close()

    registration = Registration(
        service_name=servicer.SERVICE_NAME,
        add_to_server=files_pb2_grpc.add_FilesServiceServicer_to_server,
        servicer=servicer.FilesServicer(
            files, authenticated=settings.caller_tokens_dir is not None
        ),
    )
    return [registration], cleanup


async def _maintain(store: gridfs_store.GridFSStore, *, interval: float) -> None:
    """Indexes once, then the sweep for abandoned uploads and interrupted deletions at
    start and every ``interval``."""
    while True:
        try:
            await store.ensure_indexes()
            swept = await store.sweep_abandoned_uploads()
            finished = await store.finish_interrupted_deletions()
        except errors.Unavailable:
            log.warning("files database unreachable; maintenance retries")
            await asyncio.sleep(min(interval, STARTUP_RETRY_SECONDS))
            continue
        if swept:
            log.info("abandoned uploads swept", count=swept)
        if finished:
            log.info("interrupted deletions finished", count=finished)
        await asyncio.sleep(interval)
