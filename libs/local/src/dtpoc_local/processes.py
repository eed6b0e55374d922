"""Server processes of the harness and of ``dtpoc up``: start, watch, log, stop.

Each server writes stdout and stderr to one log file (under the test's tmp
dir, or the local platform's ``logs/``). When a readiness wait fails the tail
of the log is in the error, and the test suite shows every running server's
tail when a test fails, so the cause is visible without digging.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from dtpoc_local import waiting

_running: list[ServerProcess] = []
"""Servers started and not yet stopped (:func:`running_servers`)."""


_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
"""Loaded up front: the child between fork and exec must only make the one call."""


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies, even by SIGKILL (Linux).

    The parent is pytest or ``dtpoc up``.

    Servers run in their own session (so Ctrl-C reaches the parent, whose teardown
    stops them in order); this keeps a crashed test run from leaving them behind.
    Linux sends the signal when the *thread* that started the child ends, so it
    is only armed for servers started from the main thread.
    """
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ServerExited(RuntimeError):
    """A server process ended while it was expected to run."""


class ServerProcess:
    """One server process, its log file and its lifecycle.

    Started in its own session (process group) so that stopping it never
    signals the parent; stopped with SIGTERM, then SIGKILL after a deadline.
    """

    def __init__(
        self,
        *,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> ServerProcess:
        """Start the process; returns self for chaining."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"$ {' '.join(self.argv)}\n".encode())
        self._log.flush()
        self._popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self._env} if self._env is not None else None,
            cwd=self._cwd,
            start_new_session=True,
            preexec_fn=(
                _die_with_parent if threading.current_thread() is threading.main_thread() else None
            ),
        )
        _running.append(self)
        return self

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise ServerExited(f"{self.name} was never started")
        return self._popen.pid

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def ensure_running(self) -> None:
        """Raise :class:`ServerExited` with the log tail if the process has ended."""
        if self._popen is None:
            raise ServerExited(f"{self.name} was never started")
        code = self._popen.poll()
        if code is not None:
            raise ServerExited(
                f"{self.name} exited with code {code}; log {self.log_path}:\n{self.log_tail()}"
            )

    def wait_ready(self, probe: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Poll ``probe`` until it is true; fail at once if the process dies.

        On failure the process is stopped before the error propagates, so a
        server that never became ready never outlives its fixture.
        """

        def ready() -> bool:
            self.ensure_running()
            return probe()

        try:
            waiting.wait_for(
                ready,
                timeout=timeout,
                what=f"{self.name} to be ready ({what})",
                details=lambda: f"log {self.log_path}:\n{self.log_tail()}",
            )
        except BaseException:
            self.stop()
            raise

    def stop(self, *, timeout: float = 15.0) -> None:
        """Terminate, then kill after ``timeout`` seconds. Safe to call twice."""
        popen = self._popen
        if popen is not None and popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self in _running:
            _running.remove(self)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's log (empty if none yet)."""
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def console_script(name: str) -> str:
    """The console script ``name`` of the running Python environment (the workspace's)."""
    script = Path(sys.executable).parent / name
    if not script.exists():
        raise RuntimeError(f"{script} is missing: run `uv sync` in the workspace")
    return str(script)


def running_servers() -> list[ServerProcess]:
    """Servers started and not yet stopped, oldest first.

    The test suite's failure report shows their log tails, and its teardown
    stops what a fixture could not (``tests/realdeps/servers.py``).
    """
    return list(_running)
