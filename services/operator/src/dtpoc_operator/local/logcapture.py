"""A local replica's stdout and stderr, into its attempt's ``log`` file.

What the kubelet's log driver does for a container: the replica writes into
a pipe, a thread of the supervisor reads it and appends to the file, each
line starting with the time it arrived (:mod:`dtpoc_common.replica_logs`),
up to a cap; past the cap one marker line ends the log and the rest is read
and dropped, so a chatty replica neither fills the disk nor blocks on a full
pipe. The file grows while the replica runs, which is what lets the API
follow it live.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

from dtpoc_common import replica_logs

READ_BYTES = 64 * 1024
#: How long the copier may take to drain the pipe once the replica's processes ended.
DRAIN_SECONDS = 10.0


def stamped(data: bytes, *, at_line_start: bool, stamp: bytes) -> tuple[bytes, bool]:
    """``data`` with ``stamp`` before each line it starts; and whether it ended a line."""
    out = bytearray()
    parts = data.split(b"\n")
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        if last and not part:
            break
        if at_line_start:
            out += stamp
            at_line_start = False
        out += part
        if not last:
            out += b"\n"
            at_line_start = True
    return bytes(out), at_line_start


class LogCapture:
    """``with LogCapture(path, max_bytes=n) as fd``: give ``fd`` to the child as
    stdout/stderr, call :meth:`started` once it is spawned (the supervisor's
    copy of the write end closes), and leaving the block waits for the copier."""

    def __init__(self, path: Path, *, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.truncated = False
        self._read_fd = -1
        self._write_fd = -1
        self._thread: threading.Thread | None = None

    def __enter__(self) -> int:
        self._read_fd, self._write_fd = os.pipe()
        out = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._thread = threading.Thread(target=self._copy, args=(out,), daemon=True)
        self._thread.start()
        return self._write_fd

    def write_line(self, text: str) -> None:
        """A line of the supervisor's own (a failed input fetch), in the same format."""
        os.write(self._write_fd, (text.rstrip("\n") + "\n").encode())

    def started(self) -> None:
        """The child holds the write end now: drop the supervisor's, so that the
        copier sees the end of the log once every process of the replica is gone."""
        if self._write_fd >= 0:
            os.close(self._write_fd)
            self._write_fd = -1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.started()
        if self._thread is not None:
            self._thread.join(DRAIN_SECONDS)

    def _copy(self, out: int) -> None:
        try:
            written = os.fstat(out).st_size
            at_line_start = True
            while data := os.read(self._read_fd, READ_BYTES):
                if self.truncated:
                    continue
                stamp = (replica_logs.timestamp() + " ").encode()
                chunk, ends_line = stamped(data, at_line_start=at_line_start, stamp=stamp)
                if written + len(chunk) > self.max_bytes:
                    chunk = chunk[: max(self.max_bytes - written, 0)]
                    ending = b"" if not chunk or chunk.endswith(b"\n") else b"\n"
                    marker = replica_logs.truncation_marker(self.max_bytes)
                    chunk += ending + stamp + marker.encode() + b"\n"
                    self.truncated = True
                os.write(out, chunk)
                written += len(chunk)
                at_line_start = ends_line
        finally:
            os.close(out)
            os.close(self._read_fd)
