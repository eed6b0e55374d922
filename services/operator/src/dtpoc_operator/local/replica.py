"""Supervisor of one local replica: ``python -m dtpoc_operator.local.replica <attempt dir>``.

What a kubelet does for a pod, for one process: it holds a lock for as long
as it lives (so the operator, even a restarted one, can tell "running" from
"gone"), fetches the input files with the same code as the init container,
runs the command in its own process group, and records how it ended in
``exit.json`` (atomically). It lives in its own session, so an operator that
crashes or restarts does not take running replicas with it: the next
operator adopts them and collects their outputs when they finish.

SIGTERM (terminate) is forwarded to the command; the supervisor stays to
record the outcome. SIGKILL of the group ends both, leaving no record, which
the operator reports as the reason it knows (terminated, or lost).

Files in the attempt folder: ``spec.json`` (written by the operator: argv,
env, folders, inputs), ``lock``, ``pid.json``, ``exit.json``, ``log``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from dtpoc.files.v1alpha1 import files_pb2_grpc
from dtpoc_common import grpcclient
from dtpoc_operator import fetch_inputs

SPEC_FILE = "spec.json"
LOCK_FILE = "lock"
PID_FILE = "pid.json"
EXIT_FILE = "exit.json"
LOG_FILE = "log"
LOG_TAIL_BYTES = 2048


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` so that a reader sees the old file or the whole new one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with partial.open("w") as handle:
        json.dump(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def log_tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            return handle.read().decode(errors="replace").strip()
    except OSError:
        return ""


def _fetch(spec: dict[str, Any]) -> None:
    inputs = fetch_inputs.parse_inputs(json.dumps(spec.get("inputs") or []))
    if not inputs:
        Path(spec["input_dir"]).mkdir(parents=True, exist_ok=True)
        return

    async def run() -> None:
        channel = grpcclient.open_channel(spec["files_address"])
        try:
            stub = files_pb2_grpc.FilesServiceStub(channel)
            await fetch_inputs.fetch_inputs(
                stub,
                inputs,
                Path(spec["input_dir"]),
                timeout_seconds=float(spec.get("fetch_timeout_seconds", 300)),
            )
        finally:
            await channel.close()

    asyncio.run(run())


def supervise(attempt: Path) -> int:
    """Run the replica described by ``attempt/spec.json``; returns the supervisor's exit code."""
    lock = (attempt / LOCK_FILE).open("a")
    fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # held until this process ends
    if (attempt / EXIT_FILE).exists():
        return 0  # already finished: a stray second start does nothing
    spec = json.loads((attempt / SPEC_FILE).read_text())
    started = now_iso()
    write_json_atomic(
        attempt / PID_FILE, {"pid": os.getpid(), "pgid": os.getpgid(0), "started_at": started}
    )
    record: dict[str, Any] = {"started_at": started}

    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: Any) -> None:
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    try:
        _fetch(spec)
    except fetch_inputs.FetchError as error:
        record.update(
            exit_code=error.exit_code,
            reason="InputFetchFailed",
            message=error.message,
            finished_at=now_iso(),
        )
        write_json_atomic(attempt / EXIT_FILE, record)
        return 0
    Path(spec["output_dir"]).mkdir(parents=True, exist_ok=True)
    work = attempt / "work"
    work.mkdir(exist_ok=True)
    log_path = attempt / LOG_FILE
    with log_path.open("ab") as log:
        try:
            child = subprocess.Popen(
                spec["argv"],
                env=spec["env"],
                cwd=work,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        except OSError as error:
            record.update(
                exit_code=127,
                reason="StartError",
                message=f"could not start {spec['argv'][0]!r}: {error.strerror}",
                finished_at=now_iso(),
            )
            write_json_atomic(attempt / EXIT_FILE, record)
            return 0
        record["child_pid"] = child.pid
        write_json_atomic(
            attempt / PID_FILE,
            {**json.loads((attempt / PID_FILE).read_text()), "child_pid": child.pid},
        )
        while True:
            try:
                code = child.wait()
                break
            except InterruptedError:
                continue
    record["finished_at"] = now_iso()
    if code < 0:
        number = -code
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        record.update(
            exit_code=128 + number,
            signal=number,
            reason="Killed",
            message=f"killed by {name}",
        )
    else:
        record["exit_code"] = code
        if code != 0:
            record.update(reason="Error", message=log_tail(log_path)[-1024:])
    write_json_atomic(attempt / EXIT_FILE, record)
    return 0


def main() -> None:
    if len(sys.argv) != 2:
        print("usage: python -m dtpoc_operator.local.replica <attempt dir>", file=sys.stderr)
        sys.exit(2)
    sys.exit(supervise(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
