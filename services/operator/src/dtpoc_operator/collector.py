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

A replica controls its output folder, and may keep changing it while the
collector works (a process left behind, a container swapping a subfolder for
a symbolic link). So the folder is walked with directory file descriptors:
every step is an ``openat`` relative to the folder above with
``O_NOFOLLOW``, never a path looked up again from the top, and a symbolic
link is reported, never followed; the collector cannot leave the replica's
folder, neither to read (its service-account token, say) nor to delete.
What it cannot read or cannot store - permission denied, a link, a FIFO or
device, a file that vanished or changed, nesting deeper than
:data:`MAX_DEPTH`, more than :data:`MAX_FILES` files, a file larger than
Files takes (its size is read before a byte is hashed, so a huge sparse
file costs nothing, and hashing stops once a growing file passes the
limit) - is skipped and listed
in :attr:`Collected.skipped` (the reconciler puts it in the replica's status
message); everything else is collected. Nothing the folder holds makes
:meth:`OutputCollector.collect` or :meth:`OutputCollector.remove_uploaded`
raise: only Files being unreachable does (:class:`CollectError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import mimetypes
import os
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import struct_pb2

from dtpoc.files.v1alpha1 import files_pb2
from dtpoc_common import limits
from dtpoc_common import logging as dlog
from dtpoc_operator import metrics, ports

log = dlog.get_logger(__name__)

CHUNK_BYTES = 1024 * 1024
MAX_FILENAME_CHARS = 255
#: Folders below the replica's folder the collector descends into.
MAX_DEPTH = 64
#: Files one replica may leave; the rest are reported, not stored.
MAX_FILES = 10_000
#: Largest output file stored by default: the Files service's default
#: ``max_upload_bytes`` (the operator's ``max_output_file_bytes`` setting).
DEFAULT_MAX_FILE_BYTES = limits.DEFAULT_MAX_UPLOAD_BYTES
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in after the check must not block the open.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFLNK: "a symbolic link (not followed)",
}
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
    #: The folder collected (None: nothing was looked at).
    folder: Path | None = None

    @classmethod
    def nothing(cls) -> Collected:
        """What a replica with no attempt to collect answers."""
        return cls(file_ids=(), uploaded=(), skipped=(), bytes=0)

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


class Unreadable(Exception):
    """A file of the output folder cannot be collected; the message says why."""


def _why(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "replaced by a symbolic link (not followed)"
    if error.errno == errno.ENOTDIR:
        # O_DIRECTORY | O_NOFOLLOW on a link answers ENOTDIR on Linux.
        return "a folder on its path was replaced by a symbolic link or a file (not followed)"
    if error.errno == errno.ENOENT:
        return "vanished during collection"
    return f"unreadable: {error.strerror or type(error).__name__}"


def open_folder(folder: Path) -> int | None:
    """A descriptor of the replica's folder; None when it does not exist.

    Raises :class:`Unreadable` when the folder itself is a link or not a folder.
    """
    try:
        return os.open(folder, _DIR_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ENOTDIR and not folder.is_symlink():
            raise Unreadable("the output folder is not a folder") from error
        if error.errno in (errno.ENOTDIR, errno.ELOOP):
            raise Unreadable("the output folder is a symbolic link (not followed)") from error
        raise Unreadable(f"the output folder: {_why(error)}") from error


def open_beneath(root_fd: int, parts: tuple[str, ...]) -> int:
    """``openat`` of ``parts`` under ``root_fd``, one component at a time, never
    following a link: the file (read-only) or, with ``parts`` ending in a folder,
    raises. The caller closes the answer."""
    with _parent_of(root_fd, parts) as parent:
        return os.open(parts[-1], _FILE_FLAGS, dir_fd=parent)


@contextlib.contextmanager
def _parent_of(root_fd: int, parts: tuple[str, ...]) -> Iterator[int]:
    """A descriptor of the folder holding ``parts[-1]`` beneath ``root_fd``, walked one
    component at a time without following a link (``root_fd`` itself for a top-level
    name); a descriptor it opened is closed on leaving."""
    fd = root_fd
    try:
        for name in parts[:-1]:
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            if fd != root_fd:
                os.close(fd)
            fd = child
        yield fd
    finally:
        if fd != root_fd:
            os.close(fd)


@dataclass
class Scan:
    """What :func:`scan_folder` found: files to store, and what it skipped, with why."""

    folder: Path
    files: list[OutputFile]
    skipped: list[tuple[str, str]]

    def skip(self, parts: tuple[str, ...], reason: str) -> None:
        relpath = _safe_text("/".join(parts)) or "."
        log.warning("output skipped", path=str(self.folder), relpath=relpath, reason=reason)
        self.skipped.append((relpath, reason))


def scan_folder(folder: Path, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Scan:
    """Regular files under ``folder``, in relpath order, and what was skipped.

    A missing folder has no files: a replica that never started wrote nothing.
    """
    found = Scan(folder=folder, files=[], skipped=[])
    try:
        root = open_folder(folder)
    except Unreadable as problem:
        found.skip((), str(problem))
        return found
    if root is None:
        return found
    try:
        _walk(found, root, (), depth=0, max_file_bytes=max_file_bytes)
    finally:
        os.close(root)
    found.files.sort(key=lambda f: f.relpath)
    return found


def scan(folder: Path) -> list[OutputFile]:
    """The regular files :func:`scan_folder` finds."""
    return scan_folder(folder).files


def _walk(
    found: Scan, dir_fd: int, parts: tuple[str, ...], *, depth: int, max_file_bytes: int
) -> None:
    try:
        names = sorted(os.listdir(dir_fd))
    except OSError as error:
        found.skip(parts, _why(error))
        return
    for name in names:
        here = (*parts, name)
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as error:
            found.skip(here, _why(error))
            continue
        if stat.S_ISDIR(info.st_mode):
            if depth + 1 > MAX_DEPTH:
                found.skip(here, f"nested deeper than {MAX_DEPTH} folders")
                continue
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as error:
                found.skip(here, _why(error))
                continue
            try:
                _walk(found, child, here, depth=depth + 1, max_file_bytes=max_file_bytes)
            finally:
                os.close(child)
        elif not stat.S_ISREG(info.st_mode):
            found.skip(here, _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file"))
        elif len(found.files) >= MAX_FILES:
            found.skip(here, f"more than {MAX_FILES} output files")
        elif info.st_size > max_file_bytes:
            found.skip(here, _too_large(max_file_bytes))
        else:
            try:
                digest, size = _hash_at(dir_fd, name, max_bytes=max_file_bytes)
            except (OSError, Unreadable) as error:
                found.skip(here, _why(error) if isinstance(error, OSError) else str(error))
                continue
            found.files.append(
                OutputFile(
                    path=found.folder.joinpath(*here),
                    relpath=_safe_text("/".join(here)),
                    size=size,
                    sha256=digest,
                )
            )


def _too_large(max_bytes: int) -> str:
    return f"larger than {max_bytes} bytes, the most Files stores"


def _hash_at(dir_fd: int, name: str, *, max_bytes: int) -> tuple[str, int]:
    fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    try:
        return _hash_fd(fd, max_bytes=max_bytes)
    finally:
        os.close(fd)


def _hash_fd(fd: int, *, max_bytes: int) -> tuple[str, int]:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise Unreadable("changed into something other than a regular file")
    if info.st_size > max_bytes:
        raise Unreadable(_too_large(max_bytes))
    digest = hashlib.sha256()
    size = 0
    while chunk := os.read(fd, CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:  # grew after the size check
            raise Unreadable(_too_large(max_bytes))
        digest.update(chunk)
    return digest.hexdigest(), size


def _parts(folder: Path, path: Path) -> tuple[str, ...]:
    return path.relative_to(folder).parts


class OutputCollector:
    """Uploads replica output folders to Files with bounded parallelism."""

    def __init__(
        self,
        stub: ports.FilesUploads,
        *,
        max_parallel_uploads: int,
        timeout_seconds: float,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        self._stub = stub
        self._uploads = asyncio.Semaphore(max_parallel_uploads)
        self._timeout = timeout_seconds
        self._max_file_bytes = max_file_bytes

    async def collect(
        self, folder: Path, *, service_id: str, replica_index: int, run: str
    ) -> Collected:
        """Upload every file under ``folder``; delete nothing (see module docs).

        Raises :class:`CollectError` when Files cannot take them now; nothing
        in the folder makes it raise.
        """
        found = await asyncio.to_thread(scan_folder, folder, max_file_bytes=self._max_file_bytes)
        ids: list[str] = []
        uploaded: list[Path] = []
        skipped = list(found.skipped)
        total = 0
        for item in found.files:
            try:
                file_id = await self._upload(
                    folder, item, service_id=service_id, replica_index=replica_index, run=run
                )
            except Unreadable as problem:
                skipped.append((item.relpath, str(problem)))
                continue
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
                    skipped.append((item.relpath, error.details() or "refused"))
                    continue
                metrics.UPLOADS.labels(result="error").inc()
                raise CollectError(
                    f"Files did not take {item.relpath}: {error.code().name} {error.details()}"
                ) from error
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
            file_ids=tuple(ids),
            uploaded=tuple(uploaded),
            skipped=tuple(skipped),
            bytes=total,
            folder=folder,
        )

    async def _upload(
        self, folder: Path, item: OutputFile, *, service_id: str, replica_index: int, run: str
    ) -> str:
        """Store one file, read through a descriptor opened beneath ``folder``.

        Raises :class:`Unreadable` when the file cannot be opened or read (it
        changed since the scan); Files refuses content other than the scanned
        digest, so a file rewritten meanwhile is never stored torn.
        """
        metadata = struct_pb2.Struct()
        metadata.update(
            {
                "service_id": service_id,
                "replica_index": replica_index,
                "path": item.relpath,
                "run": run,
            }
        )
        header = files_pb2.UploadFileHeader(
            filename=upload_filename(item.relpath),
            content_type=mimetypes.guess_type(item.relpath)[0] or "",
            metadata=metadata,
            expected_sha256=item.sha256,
            expected_length=item.size,
        )
        fd = await asyncio.to_thread(_open_output, folder, item)
        read_failed: list[OSError] = []

        async def requests() -> AsyncIterator[files_pb2.UploadFileRequest]:
            yield files_pb2.UploadFileRequest(header=header)
            try:
                while chunk := await asyncio.to_thread(os.read, fd, CHUNK_BYTES):
                    yield files_pb2.UploadFileRequest(chunk=chunk)
            except OSError as error:
                read_failed.append(error)  # no finish: Files stores nothing
                return
            yield files_pb2.UploadFileRequest(finish=True)

        try:
            async with self._uploads:
                response: files_pb2.UploadFileResponse = await self._stub.UploadFile(
                    requests(), timeout=self._timeout
                )
        except grpc.aio.AioRpcError as error:
            if read_failed:
                raise Unreadable(_why(read_failed[0])) from error
            raise
        finally:
            os.close(fd)
        return response.file_id

    @staticmethod
    def remove_uploaded(folder: Path, collected: Collected) -> None:
        """Delete the uploaded files, the links, then every folder left empty (the
        replica's folder too). Skipped files stay. Call only after the ids are
        recorded. Works through descriptors beneath ``folder``, like the scan, and
        never raises for what it cannot remove (it stays, and is logged)."""

        def remove(root: int) -> None:
            for path in collected.uploaded:
                _unlink_beneath(root, _parts(folder, path), folder=folder)
            _prune(root, depth=0, folder=folder, everything=False)

        _clear_beneath(folder, remove)

    @staticmethod
    def remove_other_attempts(replica_folder: Path, *, keep: str) -> None:
        """Delete every attempt folder of a replica but ``keep`` (the one that counts,
        collected already), then the replica's folder if nothing else is left."""

        def remove(root: int) -> None:
            try:
                for name in os.listdir(root):
                    if name != keep:
                        _remove_entry(root, name, folder=replica_folder)
            except OSError as error:
                log.warning("attempts not removed", path=str(replica_folder), error=_why(error))

        _clear_beneath(replica_folder, remove)


def _clear_beneath(folder: Path, remove: Callable[[int], None]) -> None:
    """Run ``remove`` on a descriptor of ``folder`` (opened without following a link),
    then remove the folder if that left it empty. An absent folder is nothing to do;
    one that cannot be opened is logged and stays."""
    try:
        root = open_folder(folder)
    except Unreadable as problem:
        log.warning("output folder not removed", path=str(folder), reason=str(problem))
        return
    if root is None:
        return
    try:
        remove(root)
    finally:
        os.close(root)
    _rmdir_quietly(folder)


def _remove_entry(dir_fd: int, name: str, *, folder: Path) -> None:
    """Remove ``name`` below ``dir_fd``, a folder with everything in it (no link followed)."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode):
            os.unlink(name, dir_fd=dir_fd)
            return
        child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        try:
            _prune(child, depth=1, folder=folder, everything=True)
        finally:
            os.close(child)
        os.rmdir(name, dir_fd=dir_fd)
    except OSError as error:
        log.warning("output not removed", path=str(folder), name=name, error=_why(error))


def _open_output(folder: Path, item: OutputFile) -> int:
    try:
        root = open_folder(folder)
        if root is None:
            raise Unreadable("vanished during collection")
        try:
            fd = open_beneath(root, _parts(folder, item.path))
        finally:
            os.close(root)
    except OSError as error:
        raise Unreadable(_why(error)) from error
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Unreadable("changed into something other than a regular file")
    return fd


def _unlink_beneath(root: int, parts: tuple[str, ...], *, folder: Path) -> None:
    try:
        with _parent_of(root, parts) as parent:
            os.unlink(parts[-1], dir_fd=parent)
    except FileNotFoundError:
        return
    except OSError as error:
        log.warning(
            "uploaded output not removed",
            path=str(folder),
            relpath="/".join(parts),
            error=_why(error),
        )


def _prune(dir_fd: int, *, depth: int, folder: Path, everything: bool) -> None:
    """Remove links (the links, never their targets), empty folders and, with
    ``everything``, every other entry below ``dir_fd``."""
    try:
        names = os.listdir(dir_fd)
    except OSError:
        return
    for name in names:
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                if depth + 1 > MAX_DEPTH:
                    continue
                child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    _prune(child, depth=depth + 1, folder=folder, everything=everything)
                finally:
                    os.close(child)
                os.rmdir(name, dir_fd=dir_fd)
            elif everything or stat.S_ISLNK(info.st_mode):
                os.unlink(name, dir_fd=dir_fd)
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                log.warning("output not removed", path=str(folder), name=name, error=_why(error))


def _rmdir_quietly(folder: Path) -> None:
    try:
        os.rmdir(folder)
    except OSError:
        return  # not empty: a skipped or non-regular file remains
