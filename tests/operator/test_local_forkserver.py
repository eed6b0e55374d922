"""Supervisors forked by the fork server run replicas as a started supervisor does.

The local runtime forks each replica's supervisor from one long-lived
``dtpoc_operator.local.spawner`` instead of starting a new interpreter per
replica. What must still hold: the replica runs with its spec's command and
environment, its exit is recorded and reported, the supervisor has a session
of its own, and it outlives the fork server (as replicas outlive the operator).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from dtpoc_local import waiting
from dtpoc_operator.local import forkserver
from dtpoc_operator.local import replica as sup

WAIT = 30.0
REPLICA = (
    "import os, pathlib, time\n"
    "control = pathlib.Path(os.environ['CONTROL'])\n"
    "while os.environ.get('WAIT_FOR_CONTROL') and not control.exists():\n"
    "    time.sleep(0.05)\n"
    "pathlib.Path(os.environ['OUTPUT_FOLDER'], 'out.txt').write_text(os.environ['RUN_ID'])\n"
)


def _attempt(root: Path, name: str, *, wait_for_control: bool) -> Path:
    attempt = root / name / "0"
    attempt.mkdir(parents=True)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "RUN_ID": name,
        "OUTPUT_FOLDER": str(root / name / "output"),
        "CONTROL": str(root / f"{name}.go"),
        "WAIT_FOR_CONTROL": "1" if wait_for_control else "",
    }
    spec: dict[str, Any] = {
        "input_dir": str(attempt / "input"),
        "output_dir": env["OUTPUT_FOLDER"],
        "inputs": [],
        "files_address": "127.0.0.1:1",
        "fingerprint": "test",
        "argv": [sys.executable, "-c", REPLICA],
        "env": env,
    }
    sup.write_json_atomic(attempt / sup.SPEC_FILE, spec)
    return attempt


def _exit_record(attempt: Path) -> dict[str, Any] | None:
    path = attempt / sup.EXIT_FILE
    return json.loads(path.read_text()) if path.exists() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_forked_supervisors_run_replicas_and_report_their_exits(tmp_path: Path) -> None:
    server = forkserver.ForkServer()
    exited: list[str] = []
    try:
        attempts = [_attempt(tmp_path, f"r{n}", wait_for_control=False) for n in range(3)]
        pids = [
            await server.start(a, on_exit=lambda a=a: exited.append(a.parent.name))
            for a in attempts
        ]
        assert len(set(pids)) == 3
        await asyncio.to_thread(
            waiting.wait_for, lambda: len(exited) == 3, timeout=WAIT, what="three exits reported"
        )
    finally:
        await server.close()
    assert sorted(exited) == ["r0", "r1", "r2"]
    for attempt in attempts:
        record = _exit_record(attempt)
        assert record is not None and record["exit_code"] == 0, record
        output = attempt.parent / "output" / "out.txt"
        assert output.read_text() == attempt.parent.name
        pid_record = json.loads((attempt / sup.PID_FILE).read_text())
        assert pid_record["pgid"] == pid_record["pid"]  # a session and group of its own


async def test_a_forked_supervisor_outlives_the_fork_server(tmp_path: Path) -> None:
    server = forkserver.ForkServer()
    attempt = _attempt(tmp_path, "long", wait_for_control=True)
    try:
        pid = await server.start(attempt, on_exit=lambda: None)
        await asyncio.to_thread(
            waiting.wait_for,
            lambda: (attempt / sup.PID_FILE).exists(),
            timeout=WAIT,
            what="the supervisor running",
        )
    finally:
        await server.close()  # as when the operator stops
    assert _alive(pid) and _exit_record(attempt) is None
    (tmp_path / "long.go").touch()
    record = await asyncio.to_thread(
        waiting.wait_for, lambda: _exit_record(attempt), timeout=WAIT, what="the replica's exit"
    )
    assert record["exit_code"] == 0
    assert (attempt.parent / "output" / "out.txt").read_text() == "long"
