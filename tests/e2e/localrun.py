"""Helpers for the end-to-end tests: the platform as ``make run`` starts it, and a user's moves.

:func:`start_platform` runs ``python -m dtpoc_local.up --no-demo`` (FerretDB, files,
orchestrator, operator with the local runtime, gateway) on a free port with
its own data directory and waits for the REST API; :func:`stop_platform`
sends SIGTERM and returns the exit status. The rest are the steps a user
takes (upload, launch, status) through :mod:`dtpoc_client`, the client a
researcher's script uses, and ways to find processes in /proc. Statuses are
the REST API's JSON of the answer (:func:`dtpoc_client.cli.output.to_json`),
the document curl would print.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from dtpoc_client import Client
from dtpoc_client.cli.output import to_json
from dtpoc_common.vocabulary import API_PREFIX
from dtpoc_local import ports, processes, waiting

REPO = Path(__file__).resolve().parents[2]
RUN_MODULE = "dtpoc_local.up"
"""What ``make run`` runs (``python -m``), as a user would start it."""
SAMPLE = REPO / "examples" / "histolab" / "sample" / "input.xlsx"
START_TIMEOUT = 180.0
"""FerretDB may be built on first use (minutes); after that a start takes seconds."""
STOP_TIMEOUT = 90.0


@dataclass
class LocalPlatform:
    """A running ``python -m dtpoc_local.up``: its REST address, data dir and process."""

    port: int
    data_dir: Path
    process: processes.ServerProcess

    @property
    def api_url(self) -> str:
        return f"http://{ports.LOOPBACK}:{self.port}{API_PREFIX}"

    def client(self) -> Client:
        """The Python client on this platform's REST API (authentication is off locally)."""
        return Client(self.api_url)

    def http(self) -> httpx.Client:
        """Plain HTTP, for a body the client would reshape (the original's exact JSON)."""
        return httpx.Client(base_url=self.api_url, timeout=30.0)


def run_local_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", RUN_MODULE, *args]


def run_local_env(data_dir: Path) -> dict[str, str]:
    """The environment of a run: its own data dir, FerretDB of its own (no shared URI)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DTPOC_")}
    env["DTPOC_DATA_DIR"] = str(data_dir)
    for keep in ("DTPOC_CACHE_DIR",):
        if keep in os.environ:
            env[keep] = os.environ[keep]
    return env


def api_answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_platform(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> LocalPlatform:
    """``env``: settings of the platform's services on top of :func:`run_local_env`'s
    (e.g. ``DTPOC_OPERATOR_LOG_MAX_BYTES``)."""
    port = ports.free_port()
    server = processes.ServerProcess(
        name="run_local",
        argv=run_local_argv("--no-demo", "--port", str(port), *extra),
        log_path=data_dir.parent / f"{data_dir.name}-run_local.log",
        env={**run_local_env(data_dir), **(env or {})},
        cwd=REPO,
    ).start()
    platform = LocalPlatform(port=port, data_dir=data_dir, process=server)
    server.wait_ready(
        lambda: api_answers(platform.api_url), timeout=START_TIMEOUT, what="the REST API"
    )
    return platform


def stop_platform(platform: LocalPlatform) -> int:
    """SIGTERM run_local and return its exit status (it stops its children first)."""
    server = platform.process
    if server.is_running():
        os.kill(server.pid, signal.SIGTERM)
        waiting.wait_for(
            lambda: not server.is_running(),
            timeout=STOP_TIMEOUT,
            what="run_local to stop after SIGTERM",
            details=server.log_tail,
        )
    popen = server._popen  # the exit status is what this helper is for
    code = popen.returncode if popen is not None else None
    server.stop()
    assert code is not None
    return int(code)


# --- what a user does -------------------------------------------------------------------------


def upload_sample(client: Client) -> str:
    uploaded = client.files.upload(SAMPLE, filename="input.xlsx")
    assert uploaded.file_id, uploaded
    return uploaded.file_id


def launch(
    client: Client,
    *,
    file_id: str,
    reps: int,
    command: list[str],
    env: dict[str, str] | None = None,
) -> str:
    body = {
        "image": "dtpoc-histolab",
        "version": "local",
        "description": "end-to-end test",
        "env": env or {},
        "mount_files": {file_id: "input.xlsx"},
        "ana": {"job_type": "ondemand", "reps": reps},
        "command": command,
    }
    return client.services.launch(body).id


def status(client: Client, service_id: str) -> dict[str, Any]:
    """The service's status as the REST API's JSON (a refusal raises the client's error)."""
    body: dict[str, Any] = to_json(client.services.status(service_id))
    return body


def wait_for_status(
    client: Client, service_id: str, predicate: Any, *, timeout: float, what: str
) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def check() -> dict[str, Any] | None:
        nonlocal last
        last = status(client, service_id)
        return last if predicate(last) else None

    result: dict[str, Any] = waiting.wait_for(
        check, timeout=timeout, what=what, details=lambda: f"last status: {last}"
    )
    return result


def pids_with_env(name: str, value: str) -> list[int]:
    """Processes whose environment has ``name=value`` (how a test finds a replica)."""
    wanted = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if wanted in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, from /proc parent links."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses; fields follow the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry.name)] = int(fields[1])
    below: set[int] = set()
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        below.update(children)
        frontier.extend(children)
    return below


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def run_local_once(data_dir: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m dtpoc_local.up`` to completion (e.g. with ``--exit-after-demo``)."""
    return subprocess.run(
        run_local_argv(*args),
        env=run_local_env(data_dir),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        start_new_session=True,
    )
