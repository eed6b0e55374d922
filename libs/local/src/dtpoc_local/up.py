"""``make run``: the whole platform on this machine, then the sample analysis through its API.

No cluster and no Docker daemon needed: MongoDB is FerretDB (built from
source once, data kept under the data directory), the orchestrator keeps
Analytics documents in MongoDB and the operator runs each replica under a
supervisor: the launch's command as a process, or, when a container engine
works here (podman, docker, nerdctl), the launch's image in a container. The
demo does what a user would: upload the sample workbook, launch the histolab
simulation with two replicas over REST (with an engine, exactly the body a
client of the original sends: its image, no command; the image is built
first when missing), follow its progress and print each replica's KPIs.
Then it keeps serving until Ctrl-C.

Settings: ``DTPOC_DATA_DIR`` (default ``<repo>/var``; a second run reuses
it), ``DTPOC_MONGODB_URI`` (use that server instead of FerretDB). Flags:
``--port`` (REST API, default 8000), ``--no-demo``, ``--exit-after-demo``,
``--sim-hours``, ``--reps``, ``--demo-form``. ``DTPOC_OPERATOR_LOCAL_CONTAINER_ENGINE``
(``auto`` by default here, ``none`` for processes only) picks the engine. See
docs/local-run.md.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    # `uv run python tools/run_local.py` puts tools/ first on the path; the
    # FerretDB starter and process handling are shared with the test fixtures.
    sys.path.insert(0, str(REPO))

import grpc  # noqa: E402
import httpx  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from dtpoc_common import grpcauth  # noqa: E402
from dtpoc_operator.local import containers  # noqa: E402
from tests.realdeps import ferretdb, ports, processes, waiting  # noqa: E402

API_PREFIX = "/api/orchestrator/v1alpha1"
DEFAULT_PORT = 8000
SAMPLE_WORKBOOK = REPO / "examples" / "histolab" / "sample" / "input.xlsx"
DEMO_REPS = 2
DEMO_SIM_HOURS = "1176"
"""Seven weeks, as the seed's sample resource ran."""

READY_TIMEOUT = 60.0
"""Seconds each of our services gets to answer its health check."""
STOP_TIMEOUT = 20.0
"""Seconds each child gets between SIGTERM and SIGKILL."""
DEMO_TIMEOUT = 600.0
"""Seconds the demo's replicas get to finish."""
FINAL_PHASES = ("succeeded", "failed", "terminated")
IMAGE_BUILD = REPO / "tools" / "images" / "build"
ORIGINAL_IMAGE = "ghcr.io/cam-digital-hospitals/digital-hosp-des"
"""The image clients of the original launch; the histolab example image carries its name."""
ORIGINAL_VERSION = "latest"


class LaunchFailed(RuntimeError):
    """The platform could not be started or the demo failed; the message says why."""


class StopRequested(BaseException):
    """SIGTERM or SIGINT: leave whatever is running and shut down cleanly."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise StopRequested(signal.Signals(signum).name)


def say(message: str = "") -> None:
    print(message, flush=True)


def data_dir_from_env() -> Path:
    configured = os.environ.get("DTPOC_DATA_DIR")
    return Path(configured).expanduser().resolve() if configured else REPO / "var"


@contextlib.contextmanager
def exclusive(data_dir: Path) -> Iterator[None]:
    """One ``make run`` per data directory: two FerretDBs on one SQLite folder corrupt it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir / "run.lock"
    with lock_path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise LaunchFailed(
                f"{data_dir} is in use by a running `make run` (pid {holder}); stop it, "
                "or set DTPOC_DATA_DIR to another folder"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As servers do: connections of a previous run in TIME_WAIT do not make it busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ports.LOOPBACK, port))
        except OSError:
            return False
    return True


def ensure_credentials(folder: Path) -> Path:
    """The gRPC callers' tokens and the fetch key of a local platform, made once.

    Laid out as the chart mounts them: ``callers/<component>`` (each server
    reads the folder, each client its own file) and ``fetch.key``; owner-only.
    """
    callers = folder / "callers"
    callers.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    callers.chmod(0o700)
    for name, size in [
        *((f"callers/{c}", 32) for c in sorted(grpcauth.COMPONENTS)),
        ("fetch.key", 48),
    ]:
        path = folder / name
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(size) + "\n")
    return folder


def _grpc_serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1.0
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@dataclass
class Platform:
    """The processes of one local platform and where they can be reached."""

    data_dir: Path
    port: int
    mongodb_uri: str = ""
    files_address: str = ""
    orchestrator_address: str = ""
    operator_health: str = ""
    mongo: ferretdb.FerretDB | None = None
    children: list[processes.ServerProcess] = field(default_factory=list)
    #: The container engine the operator runs images with; None: processes only.
    engine: containers.Engine | None = None

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    @property
    def api_url(self) -> str:
        return f"http://{ports.LOOPBACK}:{self.port}{API_PREFIX}"

    def all_processes(self) -> list[processes.ServerProcess]:
        return ([self.mongo.process] if self.mongo else []) + self.children

    def _start(
        self, name: str, module: str, env: dict[str, str], probe: Callable[[], bool], what: str
    ) -> None:
        server = processes.ServerProcess(
            name=name,
            argv=[sys.executable, "-m", module],
            log_path=self.logs_dir / f"{name}.log",
            env={"DTPOC_MONGODB_URI": self.mongodb_uri, **env},
            cwd=self.data_dir,
        )
        self.children.append(server.start())
        say(f"  starting {name:<13} (pid {server.pid}) ...")
        server.wait_ready(probe, timeout=READY_TIMEOUT, what=what)

    def start(self) -> None:
        """Start MongoDB (unless given), Files, Orchestrator, Operator and Gateway, in order.

        Each is waited for with a deadline; a failure stops what was started
        and raises with the failing process's log tail.
        """
        if not _port_is_free(self.port):
            raise LaunchFailed(
                f"port {self.port} on {ports.LOOPBACK} is in use; pass --port to pick another"
            )
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        external = os.environ.get("DTPOC_MONGODB_URI")
        if external:
            self.mongodb_uri = external
            say(f"  using MongoDB at DTPOC_MONGODB_URI ({_redact(external)})")
        else:
            say("  starting FerretDB      (MongoDB protocol, SQLite files under the data dir) ...")
            self.mongo = ferretdb.start_ferretdb(workdir=self.data_dir / "ferretdb")
            self.mongodb_uri = self.mongo.uri
        files_port, orchestrator_port, health_port = ports.free_ports(3)
        self.files_address = f"{ports.LOOPBACK}:{files_port}"
        self.orchestrator_address = f"{ports.LOOPBACK}:{orchestrator_port}"
        self.operator_health = f"{ports.LOOPBACK}:{health_port}"
        self.engine = choose_engine(self.outputs_dir / ".local-runtime")
        secrets_dir = ensure_credentials(self.data_dir / "credentials")
        callers = str(secrets_dir / "callers")
        fetch_key = str(secrets_dir / "fetch.key")
        self._start(
            "files",
            "dtpoc_files",
            {
                "DTPOC_FILES_LISTEN": self.files_address,
                "DTPOC_FILES_ORCHESTRATOR_ADDRESS": self.orchestrator_address,
                "DTPOC_FILES_CALLER_TOKENS_DIR": callers,
                "DTPOC_FILES_GRPC_TOKEN_FILE": f"{callers}/{grpcauth.FILES}",
                "DTPOC_FILES_FETCH_KEY_FILE": fetch_key,
            },
            lambda: _grpc_serving(self.files_address),
            f"gRPC health at {self.files_address}",
        )
        self._start(
            "orchestrator",
            "dtpoc_orchestrator",
            {
                "DTPOC_ORCHESTRATOR_LISTEN": self.orchestrator_address,
                "DTPOC_ORCHESTRATOR_BACKEND": "local",
                "DTPOC_ORCHESTRATOR_NAMESPACE": "default",
                "DTPOC_ORCHESTRATOR_FILES_ADDRESS": self.files_address,
                # Both processes agree on whether a launch without command is runnable.
                "DTPOC_ORCHESTRATOR_LOCAL_CONTAINERS": "true" if self.engine else "false",
                "DTPOC_ORCHESTRATOR_CALLER_TOKENS_DIR": callers,
                "DTPOC_ORCHESTRATOR_GRPC_TOKEN_FILE": f"{callers}/{grpcauth.ORCHESTRATOR}",
            },
            lambda: _grpc_serving(self.orchestrator_address),
            f"gRPC health at {self.orchestrator_address}",
        )
        self._start(
            "operator",
            "dtpoc_operator",
            {
                "DTPOC_OPERATOR_RUNTIME": "local",
                "DTPOC_OPERATOR_NAMESPACES": "default",
                "DTPOC_OPERATOR_OUTPUT_ROOT": str(self.outputs_dir),
                "DTPOC_OPERATOR_FILES_ADDRESS": self.files_address,
                "DTPOC_OPERATOR_HEALTH_LISTEN": self.operator_health,
                "DTPOC_OPERATOR_METRICS_LISTEN": "",
                "DTPOC_OPERATOR_LOCAL_CONTAINER_ENGINE": (
                    self.engine.name if self.engine else "none"
                ),
                "DTPOC_OPERATOR_GRPC_TOKEN_FILE": f"{callers}/{grpcauth.OPERATOR}",
                "DTPOC_OPERATOR_FETCH_KEY_FILE": fetch_key,
            },
            lambda: _http_ok(f"http://{self.operator_health}/readyz"),
            f"http://{self.operator_health}/readyz",
        )
        self._start(
            "gateway",
            "dtpoc_gateway",
            {
                "DTPOC_GATEWAY_LISTEN": f"{ports.LOOPBACK}:{self.port}",
                "DTPOC_GATEWAY_FILES_ADDRESS": self.files_address,
                "DTPOC_GATEWAY_ORCHESTRATOR_ADDRESS": self.orchestrator_address,
                # A local run on a trusted machine: explicitly no authentication.
                "DTPOC_GATEWAY_AUTH_DISABLED": "true",
                "DTPOC_GATEWAY_GRPC_TOKEN_FILE": f"{callers}/{grpcauth.GATEWAY}",
            },
            lambda: _http_ok(f"{self.api_url}/healthz"),
            f"{self.api_url}/healthz",
        )

    def check_alive(self) -> None:
        """Raise LaunchFailed with the log tail of the first child that has exited."""
        for server in self.all_processes():
            try:
                server.ensure_running()
            except processes.ServerExited as exc:
                raise LaunchFailed(str(exc)) from None

    def stop(self) -> None:
        """SIGTERM each child, newest first, SIGKILL after STOP_TIMEOUT; safe to call twice."""
        for server in reversed(self.all_processes()):
            if server.is_running():
                say(f"  stopping {server.name} (pid {server.pid})")
            server.stop(timeout=STOP_TIMEOUT)

    def describe(self) -> str:
        logs = ", ".join(f"{p.name}.log" for p in self.children)
        mongo = (
            f"{self.mongodb_uri}  (FerretDB, data in {self.data_dir / 'ferretdb' / 'data'})"
            if self.mongo
            else f"{_redact(self.mongodb_uri)}  (from DTPOC_MONGODB_URI)"
        )
        return "\n".join(
            [
                "dtpoc is running on this machine:",
                f"  REST API       {self.api_url}   (authentication off: local run)",
                f"  API docs       http://{ports.LOOPBACK}:{self.port}/docs",
                f"  Files          gRPC {self.files_address}",
                f"  Orchestrator   gRPC {self.orchestrator_address}   (Analytics in MongoDB "
                "orchestrator.analytics)",
                f"  Operator       local runtime, health http://{self.operator_health}/readyz",
                f"  Containers     {_engine_line(self.engine)}",
                f"  MongoDB        {mongo}",
                f"  Data dir       {self.data_dir}   (kept between runs)",
                f"  Outputs        {self.outputs_dir}   (replica folders until collected)",
                f"  Logs           {self.logs_dir}/  ({logs})",
            ]
        )


def _engine_line(engine: containers.Engine | None) -> str:
    if engine is None:
        return (
            "none (no working podman/docker/nerdctl): launches need a command; "
            f"see {containers.ENGINE_SETTING}"
        )
    runtime = f", OCI runtime {engine.oci_runtime}" if engine.oci_runtime else ""
    return f"{engine.name}{runtime}: launches without a command run their image"


def choose_engine(state_root: Path) -> containers.Engine | None:
    """The engine the operator will use: ``DTPOC_OPERATOR_LOCAL_CONTAINER_ENGINE``
    (``auto`` here), with the operator's own detection."""
    choice = os.environ.get(containers.ENGINE_SETTING, "auto").strip() or "auto"
    if choice not in ("auto", *containers.AUTO_ORDER, "none"):
        raise LaunchFailed(
            f"{containers.ENGINE_SETTING}={choice!r}: use auto, podman, docker, nerdctl or none"
        )
    try:
        return containers.detect(
            choice,  # type: ignore[arg-type]
            oci_runtime=os.environ.get("DTPOC_OPERATOR_LOCAL_OCI_RUNTIME", "runc"),
            containers_conf=os.environ.get(containers.CONTAINERS_CONF_SETTING, ""),
            state_root=state_root,
        )
    except containers.EngineUnavailable as error:
        raise LaunchFailed(str(error)) from None


def _redact(uri: str) -> str:
    """Hide a password in a MongoDB URI before printing it."""
    scheme, sep, rest = uri.partition("://")
    if sep and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return uri


# --- the demo: what a user does through the REST API -----------------------------------------


def histolab_command() -> list[str]:
    """How a replica runs the example module: this environment's Python, ``-m histolab``."""
    return [sys.executable, "-m", "histolab"]


def _check_histolab_installed() -> None:
    import importlib.util

    if importlib.util.find_spec("histolab") is None:
        raise LaunchFailed(
            "the example module dtpoc-histolab is not installed in this environment "
            f"({sys.prefix}); run `uv sync --all-packages` and try again"
        )


def _answer(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 400:
        raise LaunchFailed(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    return response.json()


def upload_sample(client: httpx.Client) -> str:
    with SAMPLE_WORKBOOK.open("rb") as workbook:
        reply = _answer(
            client.post(
                "/files/upload",
                files={
                    "file": (
                        "input.xlsx",
                        workbook,
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    )
                },
            ),
            "upload of the sample workbook",
        )
    note = f" ({reply['message']})" if reply.get("message") else ""
    say(f"  uploaded {SAMPLE_WORKBOOK.relative_to(REPO)} -> file {reply['file_id']}{note}")
    return str(reply["file_id"])


def original_launch_request(*, file_id: str, reps: int, sim_hours: str) -> dict[str, Any]:
    """Exactly what a client of the original sends (shared/seed/api-contract.md): the
    image and version, the original's env, no command."""
    return {
        "image": ORIGINAL_IMAGE,
        "version": ORIGINAL_VERSION,
        "description": "Histopathology lab simulation reporting KPIs",
        "port": None,
        "env": {
            "INPUT_EXCEL_FILE": "/input/input.xlsx",
            "OUTPUT_FOLDER": "/output",
            "SIM_HOURS": sim_hours,
            "NUM_REPS": str(reps),
        },
        "mount_files": {file_id: "input.xlsx"},
        "ana": {"job_type": "ondemand", "reps": reps, "schedule": None},
        "sim": None,
    }


def ensure_demo_image(engine: containers.Engine) -> str | None:
    """Build (or find, cached) the histolab image under the original's name; None when
    it cannot be had, after saying why. The build's progress goes to the terminal."""
    reference = f"{ORIGINAL_IMAGE}:{ORIGINAL_VERSION}"
    if engine.name == "nerdctl":
        return reference if engine.image_present(reference) else None
    say(
        "  ensuring the histolab image (tools/images/build histolab, cached by content; "
        "a first build makes the Debian base too: a few minutes) ..."
    )
    started = time.monotonic()
    try:
        built = subprocess.run(
            [str(IMAGE_BUILD), "--ref", "histolab"],
            cwd=REPO,
            env={**os.environ, "PYTHON": sys.executable},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,  # the reference; progress goes to stderr, shown as it comes
            text=True,
            check=False,
            timeout=DEMO_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        say(f"  the image build did not finish: {error}")
        return None
    if built.returncode != 0 or not engine.image_present(reference):
        say(f"  the image build failed (exit {built.returncode}); see its output above")
        return None
    say(f"  image {reference} ready ({time.monotonic() - started:.0f}s)")
    return reference


def launch_request(*, file_id: str, reps: int, sim_hours: str) -> dict[str, Any]:
    """The seed's sample resource in the process form: a command instead of an image."""
    return {
        "image": "dtpoc-histolab",
        "version": "local",
        "description": "Histopathology lab simulation reporting KPIs (make run demo)",
        "env": {"SIM_HOURS": sim_hours, "NUM_REPS": str(reps)},
        "mount_files": {file_id: "input.xlsx"},
        "ana": {"job_type": "ondemand", "reps": reps},
        "command": histolab_command(),
    }


def _progress_line(status: dict[str, Any], started: float) -> str:
    counts = (
        f"{status.get('active_runs', 0)} running, {status.get('succeeded_runs', 0)} succeeded, "
        f"{status.get('failed_runs', 0)} failed of {status.get('total_runs', 0)}"
    )
    return f"  [{time.monotonic() - started:6.1f}s] {status.get('phase') or '?':<10} {counts}"


def _unwrap_status(event: Any) -> dict[str, Any]:
    """A status object from a watch event (``{"status": {...}}``) or a status answer."""
    if isinstance(event, dict):
        inner = event.get("status")
        status: dict[str, Any] = inner if isinstance(inner, dict) else event
        return status
    return {}


def _finished(status: dict[str, Any]) -> bool:
    """Final phase, and for a success every replica's outputs are stored in Files."""
    phase = status.get("phase")
    if phase not in FINAL_PHASES:
        return False
    if phase != "succeeded":
        return True
    replicas = status.get("replicas") or []
    if replicas:
        return all(r.get("outputs_collected") for r in replicas)
    return len(status.get("output_files") or []) >= int(status.get("total_runs") or 0)


def _watch_events(client: httpx.Client, service_id: str) -> Iterator[dict[str, Any]]:
    """Statuses from the Server-Sent Events stream; returns when the stream ends or idles."""
    with client.stream(
        "GET", f"/service/{service_id}/watch", timeout=httpx.Timeout(10.0, read=5.0)
    ) as response:
        if response.status_code >= 400:
            response.read()
            raise LaunchFailed(f"watch: HTTP {response.status_code}: {response.text[:300]}")
        kind = ""
        with contextlib.suppress(httpx.ReadTimeout):
            for line in response.iter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data = json.loads(line[5:].strip())
                    if kind == "error":
                        raise LaunchFailed(f"watch of service {service_id} failed: {data}")
                    yield _unwrap_status(data)
                elif not line:
                    kind = ""


def follow(
    client: httpx.Client, service_id: str, *, platform: Platform, timeout: float
) -> dict[str, Any]:
    """Print each change of the service's status until it is final; return the last one.

    Follows the SSE watch endpoint, reconnecting when it idles (every
    reconnect first sends the current status), and checks between events
    that no platform process has died.
    """
    started = time.monotonic()
    last_line = ""
    status: dict[str, Any] = {}
    while True:
        for status in _watch_events(client, service_id):
            line = _progress_line(status, started)
            if line.split("]", 1)[1] != last_line.split("]", 1)[-1]:
                say(line)
                last_line = line
            if _finished(status):
                return status
            platform.check_alive()
        platform.check_alive()
        if time.monotonic() - started > timeout:
            raise LaunchFailed(
                f"service {service_id} did not finish within {timeout:g}s; last status: "
                f"{json.dumps(status)}"
            )
        status = _unwrap_status(
            _answer(client.get(f"/service/{service_id}/status"), "service status")
        )
        if _finished(status):
            say(_progress_line(status, started))
            return status


def _fmt(value: Any, digits: int = 1) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.{digits}f}"
    return "-"


def _seed(value: Any) -> str:
    """Seeds are integers; JSON through the API may render them as 1.0e15-style floats."""
    return str(int(value)) if isinstance(value, int | float) else str(value)


def kpi_table(outputs: list[Any]) -> str:
    """One row per replica: counts, turnaround percentiles, WIP and the busiest resource."""
    header = (
        "replica",
        "seed",
        "arrived",
        "done",
        "in lab",
        "TAT p50 h",
        "p90 h",
        "p95 h",
        "urgent p90 h",
        "mean WIP",
        "busiest resource (of shift)",
    )
    rows: list[tuple[str, ...]] = [header]
    for idx, kpis in enumerate(outputs):
        if not isinstance(kpis, dict) or "turnaround_hours" not in kpis:
            rows.append((str(idx), "no KPI document", *[""] * (len(header) - 2)))
            continue
        tat = kpis["turnaround_hours"]["overall"]
        urgent = kpis["turnaround_hours"]["by_priority"].get("urgent", {})
        resources = kpis["utilisation"]["resources"]
        busiest = max(resources, key=lambda r: resources[r].get("utilisation_of_shift") or 0)
        share = resources[busiest].get("utilisation_of_shift")
        rows.append(
            (
                str(kpis.get("replica_index", idx)),
                _seed(kpis["seed"]),
                str(kpis["specimens"]["arrived"]),
                str(kpis["specimens"]["completed"]),
                str(kpis["specimens"]["wip_at_end"]),
                _fmt(tat["p50"]),
                _fmt(tat["p90"]),
                _fmt(tat["p95"]),
                _fmt(urgent.get("p90")),
                _fmt(kpis["wip"]["mean"]),
                f"{busiest} {_fmt(100 * share if share is not None else None, 0)}%",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  " + "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    ]
    lines.insert(1, "  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def demo_form(platform: Platform, wanted: str) -> str:
    """``container`` (the original's body) when an engine and the image are there, else
    ``process``, saying why; ``wanted`` forces one (``container`` fails without them)."""
    if wanted == "process":
        say("  form: process (--demo-form process): the launch gives a command")
        return "process"
    if platform.engine is None:
        if wanted == "container":
            raise LaunchFailed(
                f"--demo-form container needs a container engine ({containers.ENGINE_SETTING})"
            )
        say("  no container engine: falling back to the process form (the launch gives a command)")
        return "process"
    if ensure_demo_image(platform.engine) is None:
        if wanted == "container":
            raise LaunchFailed("--demo-form container: the histolab image is not available")
        say("  falling back to the process form (the launch gives a command)")
        return "process"
    say(f"  form: container ({platform.engine.name}): the original's launch body, no command")
    return "container"


def run_demo(
    platform: Platform, *, reps: int, sim_hours: str, timeout: float, form: str = "auto"
) -> None:
    """Upload, launch, follow, print the KPIs: the seed's sample resource, done over REST."""
    say("")
    say(f"demo: the histolab lab simulation, {reps} replicas of {sim_hours} simulated hours")
    chosen = demo_form(platform, form)
    if chosen == "process":
        _check_histolab_installed()
    with httpx.Client(base_url=platform.api_url, timeout=30.0) as client:
        file_id = upload_sample(client)
        make_body = original_launch_request if chosen == "container" else launch_request
        body = make_body(file_id=file_id, reps=reps, sim_hours=sim_hours)
        service_id = str(_answer(client.post("/service/launch", json=body), "launch")["id"])
        say(f"  launched service {service_id}: POST {API_PREFIX}/service/launch -> 202")
        status = follow(client, service_id, platform=platform, timeout=timeout)
        if status.get("phase") != "succeeded":
            replicas = json.dumps(status.get("replicas", []), indent=2)
            raise LaunchFailed(
                f"service {service_id} ended {status.get('phase')}: {status.get('message', '')}"
                f"\nreplicas: {replicas}\noperator log: {platform.logs_dir / 'operator.log'}"
            )
        outputs = [
            _answer(client.get(f"/service/{service_id}/output/{idx}"), f"output {idx}")
            for idx in range(reps)
        ]
    say("")
    say(f"KPIs per replica (GET {API_PREFIX}/service/{service_id}/output/<idx>):")
    say(kpi_table(outputs))
    say("")
    say("try:")
    say(f"  curl -s {platform.api_url}/service/{service_id}/status")
    say(f"  curl -s {platform.api_url}/service/{service_id}/output/0")
    say(f"  curl -s {platform.api_url}/files")


# --- the process ----------------------------------------------------------------------------


def report_running_services(platform: Platform) -> None:
    """Before stopping, say which services still have replicas running, and what happens to them.

    The local runtime runs replicas in sessions of their own so that an
    operator restart does not kill them; they finish on their own and the
    next run's operator stores their outputs (the data dir is kept).
    """
    if not any(p.name == "gateway" and p.is_running() for p in platform.children):
        return
    try:
        response = httpx.get(
            f"{platform.api_url}/service/", params={"status": "running", "limit": 1000}, timeout=3.0
        )
        running = response.json() if response.status_code == 200 else []
    except (httpx.HTTPError, ValueError):
        return
    if running:
        ids = ", ".join(str(s.get("id")) for s in running)
        say(
            f"  {len(running)} service(s) still running ({ids}): their replicas finish on their "
            "own; the next `make run` on this data dir stores their outputs"
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make run",
        description="Start dtpoc on this machine (no cluster, no Docker) and run the demo.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="REST API port (8000)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--no-demo", action="store_true", help="only start and serve")
    mode.add_argument(
        "--exit-after-demo", action="store_true", help="stop after the demo (tests, CI)"
    )
    parser.add_argument("--reps", type=int, default=DEMO_REPS, help="demo replicas (2)")
    parser.add_argument(
        "--sim-hours", default=DEMO_SIM_HOURS, help="demo simulated hours (1176, seven weeks)"
    )
    parser.add_argument(
        "--demo-timeout", type=float, default=DEMO_TIMEOUT, help="seconds the demo may take"
    )
    parser.add_argument(
        "--demo-form",
        choices=["auto", "container", "process"],
        default="auto",
        help="container: the original's body (image, no command); process: a command; "
        "auto: container when an engine and the image are available",
    )
    return parser


def serve(platform: Platform) -> None:
    """Wait for Ctrl-C (StopRequested); a dead child ends the wait with its log tail."""
    say("")
    say("serving; press Ctrl-C to stop")
    while True:
        platform.check_alive()
        time.sleep(0.5)


def _run(platform: Platform, args: argparse.Namespace) -> int:
    """Start, demo, serve; the exit status. Stopping is the caller's job."""
    try:
        say(f"dtpoc local run, data in {platform.data_dir}")
        platform.start()
        say("")
        say(platform.describe())
        if not args.no_demo:
            run_demo(
                platform,
                reps=args.reps,
                sim_hours=str(args.sim_hours),
                timeout=args.demo_timeout,
                form=args.demo_form,
            )
        if not args.exit_after_demo:
            serve(platform)
    except StopRequested as stop:
        say(f"{stop}: stopping")
    except (LaunchFailed, processes.ServerExited, waiting.WaitTimeout) as exc:
        say("")
        say(f"make run: error: {exc}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    platform = Platform(data_dir=data_dir_from_env(), port=args.port)
    try:
        with exclusive(platform.data_dir):
            try:
                code = _run(platform, args)
            finally:
                say("")
                # A second Ctrl-C must not leave children behind mid-shutdown.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                report_running_services(platform)
                platform.stop()
    except LaunchFailed as exc:
        say(f"make run: error: {exc}")
        return 1
    except StopRequested:
        # Ctrl-C before the lock was taken: nothing was started.
        return 0
    say("stopped" if code == 0 else f"stopped (exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
