"""Supervisor of one local replica: ``python -m dtpoc_operator.local.replica <attempt dir>``.

What a kubelet does for a pod, for one process: it holds a lock for as long
as it lives (so the operator, even a restarted one, can tell "running" from
"gone"), fetches the input files with the same code as the init container,
runs the command in its own process group, and records how it ended in
``exit.json`` (atomically). It lives in its own session, so an operator that
crashes or restarts does not take running replicas with it: the next
operator adopts them and collects their outputs when they finish.

Every process the command starts is the replica's, wherever it moves
(``setsid``, a double fork): the command is born in a cgroup of its own where
the host allows, and the supervisor is a subreaper either way (see
:mod:`.reaper`). SIGTERM (terminate) is forwarded to all of them; the
supervisor stays to record the outcome. When the command exits, whatever it
left running is killed and waited for before ``exit.json`` is written, so
nothing of the replica still writes when its outputs are collected. SIGKILL
of the group ends the supervisor and the command, leaving no record, which
the operator reports as the reason it knows (terminated, or lost); the
operator kills the rest (:func:`.reaper.members_from`).

A spec with ``container`` instead of ``argv`` runs the image in a container
(:mod:`.container_run`): SIGTERM then becomes the engine's stop with the
grace period, and the engine's client runs in a process group of its own.

Files in the attempt folder: ``spec.json`` (written by the operator: argv and
env or the container, folders, inputs), ``lock``, ``pid.json``, ``exit.json``,
``log`` (the replica's stdout and stderr, each line with its time, capped:
:mod:`.logcapture`).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from dtpoc_common import replica_logs
from dtpoc_operator.local import cgroups, logcapture, reaper

# gRPC (input fetching) and the container runner are imported where they are
# used: a supervisor starts per replica, and on a busy machine their imports
# were most of its start-up (several seconds of wall time per replica with
# nothing to fetch and no container).

SPEC_FILE = "spec.json"
LOCK_FILE = "lock"
PID_FILE = "pid.json"
EXIT_FILE = "exit.json"
LOG_FILE = replica_logs.LOCAL_LOG_FILE
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
    """The end of the log as the replica printed it (without the line times)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [replica_logs.split_line(line)[1] for line in text.split("\n")]
    return "\n".join(lines).strip()


def _capture(spec: dict[str, Any], log_path: Path) -> logcapture.LogCapture:
    limit = int(spec.get("log_max_bytes") or replica_logs.DEFAULT_MAX_BYTES)
    return logcapture.LogCapture(log_path, max_bytes=limit)


def _fetch(spec: dict[str, Any]) -> dict[str, Any] | None:
    """Fetch the inputs; None when done, else the exit record of a failed fetch."""
    if not spec.get("inputs"):
        Path(spec["input_dir"]).mkdir(parents=True, exist_ok=True)
        return None
    from dtpoc_operator import fetch_inputs

    try:
        _fetch_inputs(spec, fetch_inputs.parse_inputs(json.dumps(spec["inputs"])))
    except fetch_inputs.FetchError as error:
        return {
            "exit_code": error.exit_code,
            "reason": "InputFetchFailed",
            "message": error.message,
        }
    return None


def _fetch_inputs(spec: dict[str, Any], inputs: Any) -> None:
    import asyncio

    from dtpoc.files.v1alpha1 import files_pb2_grpc
    from dtpoc_common import grpcclient
    from dtpoc_operator import fetch_inputs

    async def run() -> None:
        channel = grpcclient.open_channel(
            spec["files_address"], token=spec.get("fetch_token") or None
        )
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

    stopping: list[Callable[[int], None]] = []

    def forward(signum: int, _frame: Any) -> None:
        for stop in stopping:
            stop(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    log_path = attempt / LOG_FILE
    failed = _fetch(spec)
    if failed is not None:
        capture = _capture(spec, log_path)
        with capture:
            capture.write_line(f"[dtpoc] input fetch failed: {failed['message']}")
        record.update(failed, finished_at=now_iso())
        write_json_atomic(attempt / EXIT_FILE, record)
        return 0
    if "container" in spec:
        record.update(_run_container(attempt, spec, log_path, stopping))
    else:
        record.update(_run_process(attempt, spec, log_path, stopping))
    record["finished_at"] = now_iso()
    write_json_atomic(attempt / EXIT_FILE, record)
    return 0


def _add_pid(attempt: Path, pid: int) -> None:
    write_json_atomic(
        attempt / PID_FILE, {**json.loads((attempt / PID_FILE).read_text()), "child_pid": pid}
    )


def _run_process(
    attempt: Path, spec: dict[str, Any], log_path: Path, stopping: list[Callable[[int], None]]
) -> dict[str, Any]:
    """The command as a child process, in a cgroup of its own where the host allows
    (:mod:`.reaper`); SIGTERM is forwarded to every process of the replica, and when
    the command exits whatever it left running is killed and waited for."""
    Path(spec["output_dir"]).mkdir(parents=True, exist_ok=True)
    work = attempt / "work"
    work.mkdir(exist_ok=True)
    reaper.become_subreaper()
    members = reaper.members_for(_cgroup_name(attempt, spec), supervisor_pid=os.getpid())
    write_json_atomic(
        attempt / PID_FILE,
        {**json.loads((attempt / PID_FILE).read_text()), **reaper.record_of(members)},
    )
    capture = _capture(spec, log_path)
    with capture as log:
        try:
            code = _start_and_wait(
                attempt, spec, log=log, members=members, stopping=stopping, capture=capture
            )
        finally:
            members.end(reap=True)  # then the pipe's last writer is gone
    if isinstance(code, dict):
        return code
    return _outcome(code, log_path)


def _start_and_wait(
    attempt: Path,
    spec: dict[str, Any],
    *,
    log: Any,
    members: reaper.Members,
    stopping: list[Callable[[int], None]],
    capture: logcapture.LogCapture,
) -> int | dict[str, Any]:
    """The command's return code (``Popen``'s), or the record of a failed start."""
    entered = members.entered() if isinstance(members, cgroups.ProcessCgroup) else nullcontext()
    try:
        with entered:
            child = subprocess.Popen(
                spec["argv"],
                env=spec["env"],
                cwd=attempt / "work",
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    except OSError as error:
        capture.write_line(f"[dtpoc] could not start {spec['argv'][0]!r}: {error.strerror}")
        return {
            "exit_code": 127,
            "reason": "StartError",
            "message": f"could not start {spec['argv'][0]!r}: {error.strerror}",
        }
    capture.started()
    stopping.append(members.signal)
    _add_pid(attempt, child.pid)
    code = reaper.wait_main(child.pid)
    child.returncode = code  # reaped here, not by Popen
    return code


def _cgroup_name(attempt: Path, spec: dict[str, Any]) -> str:
    """``<run id>-<hash of the attempt folder>``: readable, and never shared by two
    operators (or test runs) on one machine whose run ids are equal."""
    run_id = str(spec.get("env", {}).get("RUN_ID") or "replica")
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in run_id)[:80]
    digest = hashlib.sha256(str(attempt.resolve()).encode()).hexdigest()[:10]
    return f"{cleaned}-{digest}"


def _outcome(code: int, log_path: Path) -> dict[str, Any]:
    if code < 0:
        number = -code
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return {
            "exit_code": 128 + number,
            "signal": number,
            "reason": "Killed",
            "message": f"killed by {name}",
        }
    if code != 0:
        return {"exit_code": code, "reason": "Error", "message": log_tail(log_path)[-1024:]}
    return {"exit_code": code}


def _run_container(
    attempt: Path, spec: dict[str, Any], log_path: Path, stopping: list[Callable[[int], None]]
) -> dict[str, Any]:
    """The image in a container (:mod:`.container_run`); SIGTERM becomes the engine's stop."""
    from dtpoc_operator.local import container_run, containers

    settings = spec["container"]
    job = containers.ContainerJob.from_dict(settings["job"])
    container_run.prepare_input(Path(job.input_dir))
    container_run.prepare_output(
        Path(job.output_dir), collector_uid=int(settings.get("collector_uid", os.geteuid()))
    )
    runner = container_run.ContainerReplica(
        containers.Engine.from_dict(settings["engine"]),
        job,
        grace_seconds=float(settings.get("grace_seconds", 30.0)),
    )
    stopping.append(lambda _signum: runner.request_stop())
    capture = _capture(spec, log_path)

    def started(pid: int) -> None:
        capture.started()
        _add_pid(attempt, pid)

    with capture as log:
        outcome = runner.run(log_file=log, on_started=started, workdir=attempt)
    if outcome.get("reason") == "Error" and not outcome.get("message"):
        outcome["message"] = log_tail(log_path)[-1024:]
    return outcome


def main() -> None:
    if len(sys.argv) != 2:
        print("usage: python -m dtpoc_operator.local.replica <attempt dir>", file=sys.stderr)
        sys.exit(2)
    sys.exit(supervise(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
