"""Starting the process: the backend flag, and a clear refusal when it cannot start."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2, orchestrator_pb2_grpc
from dtpoc_common import grpcauth
from dtpoc_local import ports
from dtpoc_local.credentials import credentials
from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.orchestrator import OrchestratorServer, orchestrator_executable


def test_the_backend_flag_overrides_the_setting(
    orchestrator_server_factory: Callable[..., OrchestratorServer], files_server: FilesServer
) -> None:
    server = orchestrator_server_factory(
        files_address=files_server.address,
        DTPOC_ORCHESTRATOR_BACKEND="kubernetes",
        args=["--backend", "local"],
    )
    with credentials().channel(server.address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        assert stub.Healthz(orchestrator_pb2.HealthzRequest(), timeout=10).status == "ok"
    assert '"backend":"local"' in server.log_path.read_text()


def _start_and_fail(env: dict[str, str], *args: str) -> tuple[int, list[dict[str, object]]]:
    completed = subprocess.run(
        [orchestrator_executable(), *args],
        env={
            **os.environ,
            **credentials().server_env("DTPOC_ORCHESTRATOR", grpcauth.ORCHESTRATOR),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    events = [json.loads(line) for line in completed.stderr.splitlines() if line.startswith("{")]
    return completed.returncode, events


def test_no_kubernetes_configuration_is_a_clear_startup_error(tmp_path: Path) -> None:
    base = {
        "DTPOC_ORCHESTRATOR_LISTEN": f"127.0.0.1:{ports.free_port()}",
        "DTPOC_MONGODB_URI": f"mongodb://127.0.0.1:{ports.free_port()}/",
        "KUBERNETES_SERVICE_HOST": "",
        "KUBERNETES_SERVICE_PORT": "",
        "KUBECONFIG": "",
    }
    code, events = _start_and_fail({**base, "DTPOC_ORCHESTRATOR_BACKEND": "kubernetes"})
    assert code == 2
    reasons = [str(e.get("reason")) for e in events if e.get("event") == "cannot start"]
    assert len(reasons) == 1
    assert "in-cluster service account" in reasons[0]
    assert "DTPOC_ORCHESTRATOR_KUBECONFIG" in reasons[0]

    missing = tmp_path / "missing.kubeconfig"
    code, events = _start_and_fail(
        {**base, "DTPOC_ORCHESTRATOR_KUBECONFIG": str(missing)}, "--backend", "kubernetes"
    )
    assert code == 2
    assert [e.get("reason") for e in events if e.get("event") == "cannot start"] == [
        f"the kubeconfig {missing} does not exist"
    ]


def test_without_caller_tokens_it_refuses_to_start_unless_told_to_serve_everyone(
    tmp_path: Path,
) -> None:
    """Secure by default: no tokens configured is a configuration error, not an open API."""
    base = {
        "DTPOC_ORCHESTRATOR_LISTEN": f"127.0.0.1:{ports.free_port()}",
        "DTPOC_ORCHESTRATOR_BACKEND": "local",
        "DTPOC_MONGODB_URI": f"mongodb://127.0.0.1:{ports.free_port()}/",
        "DTPOC_ORCHESTRATOR_CALLER_TOKENS_DIR": "",
    }
    code, events = _start_and_fail(base)
    assert code == 2
    reasons = [str(e.get("reason")) for e in events if e.get("event") == "cannot start"]
    assert len(reasons) == 1
    assert "DTPOC_ORCHESTRATOR_CALLER_TOKENS_DIR is not set" in reasons[0]
    assert "DTPOC_ORCHESTRATOR_INSECURE_NO_AUTH=true" in reasons[0]
