"""The output collector: moves one finished replica's files into the Files service.

Runtime-independent: it takes a folder and the replica's identifiers, and
both runtimes call it the same way. The order of work is what makes it
crash-safe, and callers must keep it:

1. :meth:`OutputCollector.collect` uploads every regular file under the
   folder (``UploadFile`` client stream, with the SHA-256 and length computed
   beforehand so that a file changing under us is refused, not stored torn)
   and returns the file ids. Nothing is deleted.
2. The caller records the ids in the replica's status entry.
3. Only then the caller calls :meth:`OutputCollector.remove_uploaded`.

A crash before 2 re-uploads at the next attempt; Files deduplicates by
SHA-256, so the same ids come back and nothing is doubled. A crash between 2
and 3 leaves files that are already recorded; collecting them again answers
the same ids and removes them. Nothing is lost at any point.

Symlinks and other non-regular files are never followed or uploaded: a
replica controls its output folder, and following a link would let it read
the operator's own files (its service-account token, for one).
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import struct_pb2

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc_common import logging as dlog
from dtpoc_operator import metrics, ports

log = dlog.get_logger(__name__)

CHUNK_BYTES = 1024 * 1024
MAX_FILENAME_CHARS = 255
#: Files answers these for a file that can never be stored as it is (a bad
#: name, too large); such a file is left in place and reported, not retried.
PERMANENT_CODES = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED})


class CollectError(ports.AdapterError):
    """Files could not take the outputs now (unreachable, timed out...); try again later."""


@dataclass(frozen=True)
class OutputFile:
    """One regular file found in an output folder."""

    path: Path
    relpath: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Collected:
    """What :meth:`OutputCollector.collect` stored.

    ``file_ids`` are in ``relpath`` order; ``skipped`` lists files Files
    refused for good, as (relpath, reason): they stay on the volume.
    """

    file_ids: tuple[str, ...]
    uploaded: tuple[Path, ...]
    skipped: tuple[tuple[str, str], ...]
    bytes: int

    @property
    def note(self) -> str:
        """A human line about skipped files, empty when none."""
        if not self.skipped:
            return ""
        listed = ", ".join(f"{p} ({why})" for p, why in self.skipped[:5])
        more = f" and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
        return f"outputs not stored in Files: {listed}{more}"


def _safe_text(value: str) -> str:
    """Text that survives protobuf (UTF-8) and Files' name rules."""
    text = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join("_" if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)


def upload_filename(relpath: str) -> str:
    """The plain name a file is stored under: its base name, made safe."""
    name = _safe_text(relpath.rsplit("/", 1)[-1]).replace("\\", "_")
    if name in ("", ".", ".."):
        name = "output"
    return name[:MAX_FILENAME_CHARS]


def scan(folder: Path) -> list[OutputFile]:
    """Regular files under ``folder`` (not following links), in relpath order.

    A missing folder has no files: a replica that never started wrote nothing.
    """
    found: list[OutputFile] = []
    if not folder.is_dir() or folder.is_symlink():
        return found
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(info.st_mode):
                log.warning("output skipped: not a regular file", path=str(path))
                continue
            digest, size = _hash(path)
            relpath = path.relative_to(folder).as_posix()
            found.append(OutputFile(path=path, relpath=relpath, size=size, sha256=digest))
    found.sort(key=lambda f: f.relpath)
    return found


def _hash(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class OutputCollector:
    """Uploads replica output folders to Files with bounded parallelism."""

    def __init__(
        self,
        stub: files_pb2_grpc.FilesServiceAsyncStub,
        *,
        max_parallel_uploads: int,
        timeout_seconds: float,
    ) -> None:
        self._stub = stub
        self._uploads = asyncio.Semaphore(max_parallel_uploads)
        self._timeout = timeout_seconds

    async def collect(
        self, folder: Path, *, service_id: str, replica_index: int, run: str
    ) -> Collected:
        """Upload every file under ``folder``; delete nothing (see module docs).

        Raises :class:`CollectError` when Files cannot take them now.
        """
        files = await asyncio.to_thread(scan, folder)
        ids: list[str] = []
        uploaded: list[Path] = []
        skipped: list[tuple[str, str]] = []
        total = 0
        for item in files:
            try:
                file_id = await self._upload(
                    item, service_id=service_id, replica_index=replica_index, run=run
                )
            except grpc.aio.AioRpcError as error:
                if error.code() in PERMANENT_CODES:
                    log.warning(
                        "output refused by Files",
                        service_id=service_id,
                        replica_index=replica_index,
                        path=item.relpath,
                        detail=error.details(),
                    )
                    metrics.UPLOADS.labels(result="refused").inc()
                    skipped.append((_safe_text(item.relpath), error.details() or "refused"))
                    continue
                metrics.UPLOADS.labels(result="error").inc()
                raise CollectError(
                    f"Files did not take {item.relpath}: {error.code().name} {error.details()}"
                ) from error
            except (FileNotFoundError, PermissionError) as error:
                skipped.append((_safe_text(item.relpath), f"unreadable: {error.strerror}"))
                continue
            ids.append(file_id)
            uploaded.append(item.path)
            total += item.size
            metrics.UPLOADS.labels(result="ok").inc()
            metrics.UPLOAD_BYTES.inc(item.size)
        log.info(
            "outputs collected",
            service_id=service_id,
            replica_index=replica_index,
            run=run,
            files=len(ids),
            skipped=len(skipped),
            bytes=total,
        )
        return Collected(
            file_ids=tuple(ids), uploaded=tuple(uploaded), skipped=tuple(skipped), bytes=total
        )

    async def _upload(
        self, item: OutputFile, *, service_id: str, replica_index: int, run: str
    ) -> str:
        metadata = struct_pb2.Struct()
        metadata.update(
            {
                "service_id": service_id,
                "replica_index": replica_index,
                "path": _safe_text(item.relpath),
                "run": run,
            }
        )
        content_type = mimetypes.guess_type(item.relpath)[0] or ""
        header = files_pb2.UploadFileHeader(
            filename=upload_filename(item.relpath),
            content_type=content_type,
            metadata=metadata,
            expected_sha256=item.sha256,
            expected_length=item.size,
        )

        async def requests() -> AsyncIterator[files_pb2.UploadFileRequest]:
            yield files_pb2.UploadFileRequest(header=header)
            fd = os.open(item.path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as handle:
                while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
                    yield files_pb2.UploadFileRequest(chunk=chunk)
            yield files_pb2.UploadFileRequest(finish=True)

        async with self._uploads:
            response: files_pb2.UploadFileResponse = await self._stub.UploadFile(
                requests(), timeout=self._timeout
            )
        return response.file_id

    @staticmethod
    def remove_uploaded(folder: Path, collected: Collected) -> None:
        """Delete the uploaded files, then every folder left empty (the replica's
        folder too). Skipped files stay. Call only after the ids are recorded."""
        for path in collected.uploaded:
            path.unlink(missing_ok=True)
        if not folder.is_dir() or folder.is_symlink():
            return
        for root, dirs, names in os.walk(folder, followlinks=False):
            for name in [*dirs, *names]:  # a link to a folder is listed among dirs
                link = Path(root) / name
                if link.is_symlink():
                    link.unlink(missing_ok=True)  # the link itself, never its target
        for root, _dirs, _names in sorted(
            os.walk(folder, topdown=False, followlinks=False), key=lambda t: -len(t[0])
        ):
            try:
                os.rmdir(root)
            except OSError:
                continue  # not empty: a skipped or non-regular file remains
