"""The platform the client and the ``dtpoc`` command are tested against, and how to run them.

``client_platform`` starts the real processes a researcher's command reaches:
Files, the Orchestrator (local backend: Analytics in MongoDB), the operator
(local runtime: each replica a process) and the gateway with authentication
on (one accepted token, so a wrong one is refused as in production), all on
the test run's FerretDB. Nothing is a double.

:func:`run_dtpoc` runs the installed ``dtpoc`` console script as a user
does (a subprocess with its own config file); :func:`run_in_pty` gives it a
terminal, for the progress bar and the live table.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pty
import secrets
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dtpoc_common import grpcauth
from dtpoc_local.credentials import credentials
from dtpoc_local.databases import drop_databases
from dtpoc_local.servers.files import start_files_server
from dtpoc_local.servers.gateway import start_gateway
from dtpoc_local.servers.operator import start_operator
from dtpoc_local.servers.orchestrator import start_orchestrator_server

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "histolab" / "sample" / "input.xlsx"
LAUNCH_YAML = REPO / "examples" / "histolab" / "launch.yaml"
BIN = Path(sys.executable).parent
DTPOC = BIN / "dtpoc"
COMMAND_TIMEOUT = 300.0
"""A watch follows two short simulations on a shared two-core machine."""


@dataclass(frozen=True)
class Platform:
    """What the tests need of the running platform."""

    server: str
    token: str
    files_address: str
    orchestrator_address: str
    config_dir: Path
    grpc_token: str = field(repr=False)
    """The gateway's own gRPC token: the one credential Files and the Orchestrator
    accept for every REST method, so a gRPC client may present it."""

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a ``dtpoc`` run: this server and token, its own config file."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("DTPOC_")}
        base.update(
            DTPOC_SERVER=self.server,
            DTPOC_TOKEN=self.token,
            DTPOC_CONFIG=str(self.config_dir / "config.yaml"),
            COLUMNS="120",
        )
        base.update(extra)
        return base


def run_dtpoc(
    platform: Platform, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``dtpoc ARGS`` to completion, stdout and stderr captured."""
    assert DTPOC.exists(), f"{DTPOC} is missing: uv sync installs the dtpoc console script"
    return subprocess.run(
        [str(DTPOC), *args],
        env=env if env is not None else platform.env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


@dataclass
class PtyRun:
    """What a terminal showed and how the command ended."""

    screen: str
    returncode: int


def run_in_pty(platform: Platform, *args: str) -> PtyRun:
    """``dtpoc ARGS`` with a terminal as stdin, stdout and stderr (what a person sees)."""
    primary, secondary = pty.openpty()
    env = platform.env(TERM="xterm-256color")
    env.pop("COLUMNS")
    proc = subprocess.Popen(
        [str(DTPOC), *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        close_fds=True,
    )
    os.close(secondary)
    chunks: list[bytes] = []
    deadline = time.monotonic() + COMMAND_TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(primary, 65536)
            except OSError:  # EIO: the command closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(primary)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return PtyRun(screen=b"".join(chunks).decode("utf-8", "replace"), returncode=code)


@contextlib.contextmanager
def running_platform(mongodb_uri: str, workdir: Path) -> Iterator[Platform]:
    """Start the platform of the module docstring; stop it and drop its databases after."""
    databases: set[str] = set()
    with contextlib.ExitStack() as stack:
        stack.callback(drop_databases, mongodb_uri, databases)
        files = start_files_server(mongodb_uri=mongodb_uri, workdir=workdir)
        databases.add(files.database)
        stack.callback(files.stop)
        orchestrator = start_orchestrator_server(
            mongodb_uri=mongodb_uri, workdir=workdir, files_address=files.address, backend="local"
        )
        databases.add(orchestrator.database)
        stack.callback(orchestrator.stop)
        operator = start_operator(
            {
                "DTPOC_OPERATOR_RUNTIME": "local",
                "DTPOC_OPERATOR_NAMESPACES": orchestrator.namespace,
                "DTPOC_OPERATOR_FILES_ADDRESS": files.address,
                "DTPOC_OPERATOR_OUTPUT_ROOT": str(workdir / "outputs"),
                "DTPOC_OPERATOR_GRPC_TOKEN_FILE": str(credentials().token_file(grpcauth.OPERATOR)),
                "DTPOC_OPERATOR_FETCH_KEY_FILE": str(credentials().fetch_key_file),
                "DTPOC_MONGODB_URI": mongodb_uri,
                "DTPOC_OPERATOR_LOCAL_DATABASE": orchestrator.database,
                "DTPOC_OPERATOR_LOCAL_POLL_SECONDS": "0.3",
                "DTPOC_OPERATOR_LOG_LEVEL": "INFO",
                # Replicas run `dtpoc-histolab`, this environment's console script.
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            },
            workdir=workdir,
        )
        stack.callback(operator.stop)
        token = secrets.token_urlsafe(24)
        gateway = start_gateway(
            workdir=workdir,
            files_address=files.address,
            orchestrator_address=orchestrator.address,
            token_hashes=[hashlib.sha256(token.encode()).hexdigest()],
        )
        stack.callback(gateway.stop)
        config_dir = workdir / "config"
        config_dir.mkdir()
        yield Platform(
            server=gateway.base_url,
            token=token,
            files_address=files.address,
            orchestrator_address=orchestrator.address,
            config_dir=config_dir,
            grpc_token=credentials().token_file(grpcauth.GATEWAY).read_text().strip(),
        )


@pytest.fixture(scope="module")
def client_platform(
    mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """The platform of the module docstring, once for a test module."""
    with running_platform(mongodb_uri, tmp_path_factory.mktemp("client-platform")) as platform:
        yield platform
