"""The local platform's processes: FerretDB, Files, Orchestrator, Operator, Gateway.

:class:`Platform` starts them in order as children of ``dtpoc up`` (each
waited for with a deadline, a failure names the failing process's log tail),
checks they stay alive, and stops them newest first. They talk to each other
as in the chart: gRPC with one token per component (:func:`ensure_credentials`,
laid out as the chart mounts its Secrets), the operator's local runtime
keeping Analytics in MongoDB. Only the gateway's REST API runs without
authentication: a local run on a trusted machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dtpoc_common import grpcauth
from dtpoc_common.vocabulary import API_PREFIX
from dtpoc_local import ferretdb, grpcprocess, ports, probes, processes
from dtpoc_local.credentials import Credentials
from dtpoc_local.paths import REPO_ROOT
from dtpoc_operator.local import containers

DEFAULT_PORT = 8000
READY_TIMEOUT = 180.0
"""Seconds each of our services gets to answer its health check."""
STOP_TIMEOUT = 20.0
"""Seconds each child gets between SIGTERM and SIGKILL."""


class LaunchFailed(RuntimeError):
    """The platform could not be started or the demo failed; the message says why."""


def say(message: str = "") -> None:
    """One line for the person at the terminal, at once (the children log to files)."""
    print(message, flush=True)


def data_dir_from_env() -> Path:
    """``DTPOC_DATA_DIR``, else ``<repo>/var``: a second run reuses the first one's data."""
    configured = os.environ.get("DTPOC_DATA_DIR")
    return Path(configured).expanduser().resolve() if configured else REPO_ROOT / "var"


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
    Kept in the data dir, so replicas adopted by the next run's operator still
    reach Files with the same key.
    """
    layout = Credentials(folder)
    layout.callers_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    layout.callers_dir.chmod(0o700)
    for path, size in [
        *((layout.token_file(c), 32) for c in sorted(grpcauth.COMPONENTS)),
        (layout.fetch_key_file, 48),
    ]:
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(size) + "\n")
    return folder


def choose_engine(state_root: Path) -> containers.Engine | None:
    """The engine the operator will use: ``DTPOC_OPERATOR_LOCAL_CONTAINER_ENGINE``
    (``auto`` here), with the operator's own detection, so both agree."""
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


def engine_line(engine: containers.Engine | None) -> str:
    """How launches will run, in one line of the start-up summary."""
    if engine is None:
        return (
            "none (no working podman/docker/nerdctl): launches need a command; "
            f"see {containers.ENGINE_SETTING}"
        )
    runtime = f", OCI runtime {engine.oci_runtime}" if engine.oci_runtime else ""
    return f"{engine.name}{runtime}: launches without a command run their image"


def redact(uri: str) -> str:
    """Hide a password in a MongoDB URI before printing it."""
    scheme, sep, rest = uri.partition("://")
    if sep and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return uri


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
    def credentials(self) -> Credentials:
        """The gRPC tokens and fetch key (:func:`ensure_credentials`), kept in the data dir."""
        return Credentials(self.data_dir / "credentials")

    @property
    def api_url(self) -> str:
        return f"http://{ports.LOOPBACK}:{self.port}{API_PREFIX}"

    def all_processes(self) -> list[processes.ServerProcess]:
        return ([self.mongo.process] if self.mongo else []) + self.children

    def start(self) -> None:
        """Start MongoDB (unless given), Files, Orchestrator, Operator and Gateway, in order.

        Each is waited for with a deadline; a failure raises with the failing
        process's log tail, and the caller stops what was started.
        """
        if not _port_is_free(self.port):
            raise LaunchFailed(
                f"port {self.port} on {ports.LOOPBACK} is in use; pass --port to pick another"
            )
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        self._start_mongodb()
        files_port, orchestrator_port, health_port = ports.free_ports(3)
        self.files_address = f"{ports.LOOPBACK}:{files_port}"
        self.orchestrator_address = f"{ports.LOOPBACK}:{orchestrator_port}"
        self.operator_health = f"{ports.LOOPBACK}:{health_port}"
        self.engine = choose_engine(self.outputs_dir / ".local-runtime")
        ensure_credentials(self.credentials.root)
        self._start_files()
        self._start_orchestrator()
        self._start_operator()
        self._start_gateway()

    def _start_mongodb(self) -> None:
        external = os.environ.get("DTPOC_MONGODB_URI")
        if external:
            self.mongodb_uri = external
            say(f"  using MongoDB at DTPOC_MONGODB_URI ({redact(external)})")
            return
        say("  starting FerretDB      (MongoDB protocol, SQLite files under the data dir) ...")
        self.mongo = ferretdb.start_ferretdb(workdir=self.data_dir / "ferretdb")
        self.mongodb_uri = self.mongo.uri

    def _start_child(
        self, *, name: str, module: str, env: dict[str, str], probe: Callable[[], bool], what: str
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

    def _start_files(self) -> None:
        address = self.files_address
        self._start_child(
            name="files",
            module="dtpoc_files",
            env={
                "DTPOC_FILES_LISTEN": address,
                "DTPOC_FILES_ORCHESTRATOR_ADDRESS": self.orchestrator_address,
                **self.credentials.server_env("DTPOC_FILES", grpcauth.FILES),
                "DTPOC_FILES_FETCH_KEY_FILE": str(self.credentials.fetch_key_file),
            },
            probe=lambda: grpcprocess.health_serving(address),
            what=f"gRPC health at {address}",
        )

    def _start_orchestrator(self) -> None:
        address = self.orchestrator_address
        self._start_child(
            name="orchestrator",
            module="dtpoc_orchestrator",
            env={
                "DTPOC_ORCHESTRATOR_LISTEN": address,
                "DTPOC_ORCHESTRATOR_BACKEND": "local",
                "DTPOC_ORCHESTRATOR_NAMESPACE": "default",
                "DTPOC_ORCHESTRATOR_FILES_ADDRESS": self.files_address,
                # Both processes agree on whether a launch without command is runnable.
                "DTPOC_ORCHESTRATOR_LOCAL_CONTAINERS": "true" if self.engine else "false",
                # Running replicas' logs are read where the operator's supervisors write them.
                "DTPOC_ORCHESTRATOR_LOCAL_STATE_ROOT": str(self.outputs_dir / ".local-runtime"),
                **self.credentials.server_env("DTPOC_ORCHESTRATOR", grpcauth.ORCHESTRATOR),
            },
            probe=lambda: grpcprocess.health_serving(address),
            what=f"gRPC health at {address}",
        )

    def _start_operator(self) -> None:
        readyz = f"http://{self.operator_health}/readyz"
        self._start_child(
            name="operator",
            module="dtpoc_operator",
            env={
                "DTPOC_OPERATOR_RUNTIME": "local",
                "DTPOC_OPERATOR_NAMESPACES": "default",
                "DTPOC_OPERATOR_OUTPUT_ROOT": str(self.outputs_dir),
                "DTPOC_OPERATOR_FILES_ADDRESS": self.files_address,
                "DTPOC_OPERATOR_HEALTH_LISTEN": self.operator_health,
                "DTPOC_OPERATOR_METRICS_LISTEN": "",
                "DTPOC_OPERATOR_LOCAL_CONTAINER_ENGINE": (
                    self.engine.name if self.engine else "none"
                ),
                "DTPOC_OPERATOR_GRPC_TOKEN_FILE": str(
                    self.credentials.token_file(grpcauth.OPERATOR)
                ),
                "DTPOC_OPERATOR_FETCH_KEY_FILE": str(self.credentials.fetch_key_file),
            },
            probe=lambda: probes.http_ok(readyz),
            what=readyz,
        )

    def _start_gateway(self) -> None:
        healthz = f"{self.api_url}/healthz"
        self._start_child(
            name="gateway",
            module="dtpoc_gateway",
            env={
                "DTPOC_GATEWAY_LISTEN": f"{ports.LOOPBACK}:{self.port}",
                "DTPOC_GATEWAY_FILES_ADDRESS": self.files_address,
                "DTPOC_GATEWAY_ORCHESTRATOR_ADDRESS": self.orchestrator_address,
                # A local run on a trusted machine: explicitly no authentication.
                "DTPOC_GATEWAY_AUTH_DISABLED": "true",
                "DTPOC_GATEWAY_GRPC_TOKEN_FILE": str(self.credentials.token_file(grpcauth.GATEWAY)),
            },
            probe=lambda: probes.http_ok(healthz),
            what=healthz,
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
        """The start-up summary: where each part is reachable and where its data and logs are."""
        logs = ", ".join(f"{p.name}.log" for p in self.children)
        mongo = (
            f"{self.mongodb_uri}  (FerretDB, data in {self.data_dir / 'ferretdb' / 'data'})"
            if self.mongo
            else f"{redact(self.mongodb_uri)}  (from DTPOC_MONGODB_URI)"
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
                f"  Containers     {engine_line(self.engine)}",
                f"  MongoDB        {mongo}",
                f"  Data dir       {self.data_dir}   (kept between runs)",
                f"  Outputs        {self.outputs_dir}   (replica folders until collected)",
                f"  Logs           {self.logs_dir}/  ({logs})",
            ]
        )

    def report_running_services(self) -> None:
        """Before stopping, say which services still have replicas running, and what happens.

        The local runtime runs replicas in sessions of their own so that an
        operator restart does not kill them; they finish on their own and the
        next run's operator stores their outputs (the data dir is kept).
        """
        if not any(p.name == "gateway" and p.is_running() for p in self.children):
            return
        try:
            response = httpx.get(
                f"{self.api_url}/service/", params={"status": "running", "limit": 1000}, timeout=3.0
            )
            running = response.json() if response.status_code == 200 else []
        except (httpx.HTTPError, ValueError):
            return
        if running:
            ids = ", ".join(str(s.get("id")) for s in running)
            say(
                f"  {len(running)} service(s) still running ({ids}): their replicas finish on "
                "their own; the next `make run` on this data dir stores their outputs"
            )
