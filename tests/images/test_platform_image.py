"""The dtpoc platform image, run as the chart runs it: every entry point serves.

Each process starts from the image as its own user (uid 10001) with the
root filesystem read-only and only /tmp writable, against real servers on
the host (FerretDB, a Files process), and answers the health check the
chart's probes use. ``dtpoc-fetch-inputs`` fetches a real file into a
mounted /input as the operator's init container does.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc_common import grpcauth
from dtpoc_local import ports, waiting
from dtpoc_local.credentials import credentials
from dtpoc_local.databases import unique_db_name
from dtpoc_local.grpcprocess import health_serving
from dtpoc_local.servers.files import FilesServer
from tests.images import _containers

READY_TIMEOUT = 120.0
PLATFORM_UID = "10001"


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@dataclass(frozen=True)
class EntryPoint:
    """How to start one process of the image and how its probe asks if it is up."""

    command: str
    env: Callable[[str, int, int], dict[str, str]]  # (mongodb_uri, port, second port)
    healthy: Callable[[int], bool]


def _grpc_probe(port: int) -> bool:
    return health_serving(f"127.0.0.1:{port}")


ENTRY_POINTS = {
    "files": EntryPoint(
        command="dtpoc-files",
        env=lambda uri, port, _: {
            "DTPOC_MONGODB_URI": uri,
            "DTPOC_FILES_LISTEN": f"127.0.0.1:{port}",
            "DTPOC_FILES_DATABASE": unique_db_name("img_files"),
            "DTPOC_FILES_USAGE_CHECK": "false",
            "DTPOC_FILES_ORCHESTRATOR_ADDRESS": "",
            # The image is under test here, not authentication (tests/files/test_callers.py).
            "DTPOC_FILES_INSECURE_NO_AUTH": "true",
        },
        healthy=_grpc_probe,
    ),
    "orchestrator": EntryPoint(
        command="dtpoc-orchestrator",
        env=lambda uri, port, _: {
            "DTPOC_MONGODB_URI": uri,
            "DTPOC_ORCHESTRATOR_LISTEN": f"127.0.0.1:{port}",
            "DTPOC_ORCHESTRATOR_DATABASE": unique_db_name("img_orch"),
            "DTPOC_ORCHESTRATOR_BACKEND": "local",
            "DTPOC_ORCHESTRATOR_FILES_ADDRESS": "127.0.0.1:1",
            "DTPOC_ORCHESTRATOR_INSECURE_NO_AUTH": "true",
        },
        healthy=_grpc_probe,
    ),
    "gateway": EntryPoint(
        command="dtpoc-gateway",
        env=lambda _, port, __: {
            "DTPOC_GATEWAY_LISTEN": f"127.0.0.1:{port}",
            "DTPOC_GATEWAY_FILES_ADDRESS": "127.0.0.1:1",
            "DTPOC_GATEWAY_ORCHESTRATOR_ADDRESS": "127.0.0.1:1",
            "DTPOC_GATEWAY_AUTH_DISABLED": "true",
        },
        healthy=lambda port: _http_ok(f"http://127.0.0.1:{port}/readyz"),
    ),
    "operator": EntryPoint(
        command="dtpoc-operator",
        env=lambda uri, port, metrics: {
            "DTPOC_OPERATOR_RUNTIME": "local",
            "DTPOC_MONGODB_URI": uri,
            "DTPOC_OPERATOR_LOCAL_DATABASE": unique_db_name("img_op"),
            "DTPOC_OPERATOR_OUTPUT_ROOT": "/tmp/outputs",
            "DTPOC_OPERATOR_FILES_ADDRESS": "127.0.0.1:1",
            "DTPOC_OPERATOR_HEALTH_LISTEN": f"127.0.0.1:{port}",
            "DTPOC_OPERATOR_METRICS_LISTEN": f"127.0.0.1:{metrics}",
        },
        healthy=lambda port: _http_ok(f"http://127.0.0.1:{port}/readyz"),
    ),
}


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_entry_point_serves_as_uid_10001_on_a_read_only_root(
    name: str,
    platform_image: str,
    mongodb_uri: str,
    containers: Callable[..., _containers.Container],
) -> None:
    entry = ENTRY_POINTS[name]
    port, second = ports.free_ports(2)
    container = containers(
        platform_image, command=[entry.command], env=entry.env(mongodb_uri, port, second)
    )

    def up() -> bool:
        if not container.running():
            raise AssertionError(f"{entry.command} exited:\n{container.logs()}")
        return entry.healthy(port)

    waiting.wait_for(
        up, timeout=READY_TIMEOUT, what=f"{entry.command} health", details=container.logs
    )
    assert container.exec("id", "-u").stdout.strip() == PLATFORM_UID
    denied = container.exec("touch", "/opt/dtpoc/venv/written")
    assert denied.returncode != 0
    assert "Read-only file system" in denied.stderr
    assert container.exec("touch", "/tmp/written").returncode == 0


@pytest.fixture
def files_stub(files_server: FilesServer) -> Iterator[files_pb2_grpc.FilesServiceStub]:
    with credentials().channel(files_server.address) as channel:
        yield files_pb2_grpc.FilesServiceStub(channel)


def _upload(stub: files_pb2_grpc.FilesServiceStub, name: str, content: bytes) -> str:
    def requests() -> Iterator[files_pb2.UploadFileRequest]:
        yield files_pb2.UploadFileRequest(header=files_pb2.UploadFileHeader(filename=name))
        yield files_pb2.UploadFileRequest(chunk=content)
        yield files_pb2.UploadFileRequest(finish=True)

    return str(stub.UploadFile(requests(), timeout=20).file_id)


def _fetch_token(*file_ids: str) -> str:
    """What the operator gives the init container: a token reading exactly ``file_ids``."""
    return grpcauth.mint_fetch_token(
        credentials().fetch_key(),
        service_id="svc-image-test",
        file_ids=file_ids,
        expires_at=time.time() + 600,
    )


def test_fetch_inputs_writes_a_files_upload_into_the_mounted_input(
    platform_image: str,
    files_server: FilesServer,
    files_stub: files_pb2_grpc.FilesServiceStub,
    tmp_path: Path,
) -> None:
    content = b"ward,beds\nA,12\nB,9\n" * 1000
    file_id = _upload(files_stub, "beds.csv", content)
    inputs = tmp_path / "input"
    inputs.mkdir()
    inputs.chmod(0o777)  # the image's uid writes it, as an emptyDir in the pod
    result = _containers.run(
        platform_image,
        command=["dtpoc-fetch-inputs"],
        env={
            "DTPOC_FETCH_FILES_ADDRESS": files_server.address,
            "DTPOC_FETCH_INPUTS": json.dumps([{"file_id": file_id, "name": "beds.csv"}]),
            "DTPOC_FETCH_TOKEN": _fetch_token(file_id),
            "DTPOC_FETCH_INPUT_DIR": "/input",
            "DTPOC_FETCH_TIMEOUT_SECONDS": "30",
        },
        extra=["--volume", f"{inputs}:/input"],
    )
    assert result.returncode == 0, result.stderr
    assert [p.name for p in inputs.iterdir()] == ["beds.csv"]
    fetched = (inputs / "beds.csv").read_bytes()
    assert hashlib.sha256(fetched).hexdigest() == hashlib.sha256(content).hexdigest()
    assert "fetched" in result.stderr


def test_fetch_inputs_of_an_unknown_file_fails_with_the_reason(
    platform_image: str, files_server: FilesServer, tmp_path: Path
) -> None:
    inputs = tmp_path / "input"
    inputs.mkdir()
    inputs.chmod(0o777)
    result = _containers.run(
        platform_image,
        command=["dtpoc-fetch-inputs"],
        env={
            "DTPOC_FETCH_FILES_ADDRESS": files_server.address,
            "DTPOC_FETCH_INPUTS": json.dumps([{"file_id": "0" * 24, "name": "x.csv"}]),
            "DTPOC_FETCH_TOKEN": _fetch_token("0" * 24),
            "DTPOC_FETCH_TIMEOUT_SECONDS": "10",
        },
        extra=["--volume", f"{inputs}:/input"],
    )
    assert result.returncode == 2, result.stderr
    assert "dtpoc-fetch-inputs:" in result.stderr
    assert "does not exist in the Files service" in result.stderr
    assert list(inputs.iterdir()) == []
