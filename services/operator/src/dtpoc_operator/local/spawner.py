"""A fork server for replica supervisors: ``python -m dtpoc_operator.local.spawner``.

Each local replica runs under a supervisor (:mod:`.replica`). Started as a new
Python process, a supervisor cost about 0.15 s of CPU before it did anything
(the interpreter's start and the supervisor's imports), more than a short
replica itself; 400 replicas paid a minute of CPU for it on two cores. The
operator therefore starts this process once: it imports the supervisor's code
and forks one supervisor per request, which costs a few milliseconds. The
child is what ``python -m dtpoc_operator.local.replica <attempt>`` would have
been: a session of its own, stdin from ``/dev/null``, stdout and stderr
appended to ``<attempt>/supervisor.log``, :func:`.replica.supervise` run, its
code the exit status.

Protocol, one JSON object per line. Requests on stdin: ``{"attempt": path}``.
Answers on stdout: ``{"attempt": path, "pid": n}`` once forked (``"error"``
instead of ``"pid"`` if the fork failed), and ``{"exited": n, "code": c}``
when supervisor ``n`` ended (this process is its parent, so it reaps it).
On end of input it exits: supervisors live on in their own sessions, as
they outlive the operator (their lock files tell the next operator which
still run).

It stays single-threaded (forking a process with threads could copy a lock
held by another thread) and imports neither gRPC nor pymongo: a supervisor
imports what fetching inputs needs after the fork.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, BinaryIO

from dtpoc_operator.local import cgroups, replica

LOG_NAME = "supervisor.log"


def _child(attempt: Path, closing: list[int]) -> None:
    """In the forked child: become the supervisor of ``attempt``; never returns."""
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in closing:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        log = os.open(attempt / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
        code = replica.supervise(attempt)
    except BaseException:  # noqa: BLE001 - a forked child must end here, never return
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _answer(out: BinaryIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message).encode() + b"\n")
    out.flush()


def _reap(out: BinaryIO) -> None:
    for pid, status in cgroups.dead_children():
        _answer(out, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def _start(request: bytes, out: BinaryIO, closing: list[int]) -> None:
    try:
        attempt = Path(json.loads(request)["attempt"])
    except (ValueError, KeyError, TypeError):
        _answer(out, {"error": f"bad request {request[:200]!r}"})
        return
    try:
        pid = os.fork()
    except OSError as error:
        _answer(out, {"attempt": str(attempt), "error": str(error)})
        return
    if pid == 0:
        _child(attempt, closing)
    _answer(out, {"attempt": str(attempt), "pid": pid})


def serve(requests: BinaryIO, out: BinaryIO) -> None:
    """Fork a supervisor per request line until ``requests`` ends; report exits."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    os.set_blocking(wake_read, False)
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    signal.set_wakeup_fd(wake_write)
    closing = [wake_read, wake_write, requests.fileno(), out.fileno()]
    selector = selectors.DefaultSelector()
    selector.register(requests.fileno(), selectors.EVENT_READ, "requests")
    selector.register(wake_read, selectors.EVENT_READ, "children")
    pending = b""
    while True:
        for key, _events in selector.select():
            if key.data == "children":
                while True:
                    try:
                        if not os.read(wake_read, 512):
                            break
                    except BlockingIOError:
                        break
                _reap(out)
                continue
            chunk = os.read(requests.fileno(), 65536)
            if not chunk:
                _reap(out)
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    _start(line, out, closing)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the operator's Ctrl-C ends it by EOF
    serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
