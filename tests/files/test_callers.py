"""Only known callers reach the Files service, each to its own methods.

A replica's container has no credential, so every call it makes is refused;
the operator may store and read but not list or delete; the fetch token an
init container gets reads its own service's inputs and nothing else.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc_common import grpcauth
from dtpoc_local import ports
from dtpoc_local.credentials import credentials
from dtpoc_local.servers.files import FilesServer, files_executable
from tests.files import helpers
from tests.realdeps import grpccalls

CALL_TIMEOUT = 30.0


@pytest.fixture
def stub_as(files_server: FilesServer) -> Iterator[Callable[..., files_pb2_grpc.FilesServiceStub]]:
    """``stub_as(token)``: a Files client presenting ``token`` (None: no metadata at all)."""
    yield from grpccalls.stubs_as(files_server.address, files_pb2_grpc.FilesServiceStub)


_code = grpccalls.refusal_code


def _list(stub: files_pb2_grpc.FilesServiceStub) -> object:
    return stub.ListFiles(files_pb2.ListFilesRequest(), timeout=CALL_TIMEOUT)


def _delete(stub: files_pb2_grpc.FilesServiceStub, file_id: str) -> object:
    return stub.DeleteFile(
        files_pb2.DeleteFileRequest(file_id=file_id, force=True), timeout=CALL_TIMEOUT
    )


def _read(stub: files_pb2_grpc.FilesServiceStub, file_id: str) -> bytes:
    return helpers.download(stub, file_id).data


def _fetch_token(
    file_ids: list[str], *, expires_in: float = 600.0, key: bytes | None = None
) -> str:
    return grpcauth.mint_fetch_token(
        key or credentials().fetch_key(),
        service_id="svc-under-test",
        file_ids=file_ids,
        expires_at=time.time() + expires_in,
    )


def test_a_caller_without_credential_cannot_list_read_upload_or_delete(
    files: files_pb2_grpc.FilesServiceStub, stub_as: Callable[..., files_pb2_grpc.FilesServiceStub]
) -> None:
    """What a replica's own container can do with the Files address: nothing."""
    file_id = helpers.upload(files, b"someone's input", "input.csv").file_id
    anonymous = stub_as(None)
    assert _code(lambda: _list(anonymous)) == grpc.StatusCode.UNAUTHENTICATED
    assert _code(lambda: _delete(anonymous, file_id)) == grpc.StatusCode.UNAUTHENTICATED
    assert _code(lambda: _read(anonymous, file_id)) == grpc.StatusCode.UNAUTHENTICATED
    assert (
        _code(lambda: helpers.upload(anonymous, b"planted", "result.json"))
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert _read(files, file_id) == b"someone's input"  # still there


def test_a_wrong_or_malformed_token_is_refused(
    files: files_pb2_grpc.FilesServiceStub, stub_as: Callable[..., files_pb2_grpc.FilesServiceStub]
) -> None:
    tokens = [secrets.token_urlsafe(32), "x", credentials().token(grpcauth.GATEWAY) + "x"]
    for token in tokens:
        stub = stub_as(token)
        assert _code(lambda: _list(stub)) == grpc.StatusCode.UNAUTHENTICATED  # noqa: B023


def test_each_component_reaches_only_its_methods(
    files: files_pb2_grpc.FilesServiceStub, stub_as: Callable[..., files_pb2_grpc.FilesServiceStub]
) -> None:
    file_id = helpers.upload(files, b"input", "input.csv").file_id
    operator = stub_as(credentials().token(grpcauth.OPERATOR))
    assert _read(operator, file_id) == b"input"
    assert helpers.upload(operator, b"an output", "out.json").file_id
    assert _code(lambda: _list(operator)) == grpc.StatusCode.PERMISSION_DENIED
    assert _code(lambda: _delete(operator, file_id)) == grpc.StatusCode.PERMISSION_DENIED

    orchestrator = stub_as(credentials().token(grpcauth.ORCHESTRATOR))
    assert _list(orchestrator)
    assert _code(lambda: _delete(orchestrator, file_id)) == grpc.StatusCode.PERMISSION_DENIED
    assert (
        _code(lambda: helpers.upload(orchestrator, b"x", "x.bin"))
        == grpc.StatusCode.PERMISSION_DENIED
    )

    # The Files service's own token is for calling the orchestrator, not itself.
    itself = stub_as(credentials().token(grpcauth.FILES))
    assert _code(lambda: _list(itself)) == grpc.StatusCode.PERMISSION_DENIED
    assert _read(files, file_id) == b"input"


@pytest.mark.parametrize(
    "labels",
    [
        {"service_id": "someone-elses-service", "replica_index": 0, "path": "result.json"},
        {"service_id": "someone-elses-service"},
        {"replica_index": 0},
    ],
)
def test_only_the_operator_stores_output_labels(
    files: files_pb2_grpc.FilesServiceStub,
    stub_as: Callable[..., files_pb2_grpc.FilesServiceStub],
    labels: dict[str, object],
) -> None:
    """With the gateway's token (any REST client) a file labelled as a replica's output
    would be answered by that service's output/{idx} and held as its recorded output."""
    planted = helpers.unique_bytes(64)
    refusal = helpers.rpc_error(
        files.UploadFile,
        helpers.requests(helpers.header("result.json", metadata=labels), [planted]),
    )
    assert refusal.status == grpc.StatusCode.PERMISSION_DENIED
    assert "operator" in refusal.message
    assert all(key in refusal.message for key in labels if key != "path")
    listed = helpers.list_files(files, limit=1000).files
    assert helpers.sha256(planted) not in {info.sha256 for info in listed}, "nothing stored"

    # Without the labels the same caller stores the same bytes; the operator stores outputs.
    assert helpers.upload(files, planted, "result.json", metadata={"path": "x"}).file_id
    operator = stub_as(credentials().token(grpcauth.OPERATOR))
    output = helpers.upload(operator, helpers.unique_bytes(64), "result.json", metadata=labels)
    info = helpers.download(files, output.file_id).info
    assert {key: info.metadata[key] for key in labels} == labels


def test_a_fetch_token_reads_exactly_its_files(
    files: files_pb2_grpc.FilesServiceStub, stub_as: Callable[..., files_pb2_grpc.FilesServiceStub]
) -> None:
    mounted = helpers.upload(files, b"mounted input", "input.csv").file_id
    other = helpers.upload(files, b"another service's input", "secret.csv").file_id
    fetcher = stub_as(_fetch_token([mounted]))
    assert _read(fetcher, mounted) == b"mounted input"
    assert _code(lambda: _read(fetcher, other)) == grpc.StatusCode.PERMISSION_DENIED
    info = files_pb2.GetFileInfoRequest(file_id=mounted)
    assert (
        _code(lambda: fetcher.GetFileInfo(info, timeout=CALL_TIMEOUT))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert _code(lambda: _list(fetcher)) == grpc.StatusCode.PERMISSION_DENIED
    assert _code(lambda: _delete(fetcher, mounted)) == grpc.StatusCode.PERMISSION_DENIED
    assert _code(lambda: helpers.upload(fetcher, b"x", "x")) == grpc.StatusCode.PERMISSION_DENIED
    assert _read(files, other) == b"another service's input"


def test_an_expired_or_forged_fetch_token_is_unauthenticated(
    files: files_pb2_grpc.FilesServiceStub, stub_as: Callable[..., files_pb2_grpc.FilesServiceStub]
) -> None:
    mounted = helpers.upload(files, b"mounted input", "input.csv").file_id
    expired = stub_as(_fetch_token([mounted], expires_in=-1))
    with pytest.raises(grpc.RpcError) as caught:
        _read(expired, mounted)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert "expired" in (caught.value.details() or "")  # type: ignore[attr-defined]

    forged = stub_as(_fetch_token([mounted], key=secrets.token_bytes(48)))
    assert _code(lambda: _read(forged, mounted)) == grpc.StatusCode.UNAUTHENTICATED

    # Widening a genuine token's list of ids breaks its signature.
    genuine = _fetch_token([mounted])
    prefix, _body, signature = genuine.split(".")
    widened_body = _fetch_token([mounted, "0" * 24]).split(".")[1]
    widened = stub_as(f"{prefix}.{widened_body}.{signature}")
    assert _code(lambda: _read(widened, mounted)) == grpc.StatusCode.UNAUTHENTICATED


def test_health_answers_without_a_credential(files_server: FilesServer) -> None:
    """Probes (kubelet, the fixtures) carry no token; health reveals nothing else."""
    with grpc.insecure_channel(files_server.address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT
        )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("gatewya", secrets.token_urlsafe(32), "not named by a component"),
        ("gateway", "short", "at least 24 characters"),
        ("gateway", "", "is empty"),
    ],
    ids=["misnamed", "short", "empty"],  # the same ids in every xdist worker (no token in them)
)
def test_a_server_with_unusable_caller_tokens_does_not_start(
    tmp_path: Path, name: str, content: str, reason: str
) -> None:
    """A typo in the Secret fails the start with a reason, never serves half-protected."""
    folder = tmp_path / "callers"
    folder.mkdir()
    (folder / name).write_text(content)
    completed = subprocess.run(
        [files_executable()],
        env={
            **os.environ,
            "DTPOC_FILES_LISTEN": f"127.0.0.1:{ports.free_port()}",
            "DTPOC_FILES_CALLER_TOKENS_DIR": str(folder),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    events = [json.loads(line) for line in completed.stderr.splitlines() if line.startswith("{")]
    reasons = [str(e.get("reason")) for e in events if e.get("event") == "cannot start"]
    assert len(reasons) == 1
    assert reason in reasons[0]
    assert content not in reasons[0] or not content


def test_without_caller_tokens_it_refuses_to_start_unless_told_to_serve_everyone(
    files_server_factory: Callable[..., FilesServer],
) -> None:
    completed = subprocess.run(
        [files_executable()],
        env={
            **os.environ,
            "DTPOC_FILES_LISTEN": f"127.0.0.1:{ports.free_port()}",
            "DTPOC_FILES_CALLER_TOKENS_DIR": "",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert "DTPOC_FILES_CALLER_TOKENS_DIR is not set" in completed.stderr
    assert "DTPOC_FILES_INSECURE_NO_AUTH=true" in completed.stderr

    # Told explicitly, it serves anyone (and says so in its log).
    insecure = files_server_factory(
        DTPOC_FILES_CALLER_TOKENS_DIR="", DTPOC_FILES_INSECURE_NO_AUTH="true"
    )
    with grpcauth.sync_channel(insecure.address, None) as channel:
        assert _list(files_pb2_grpc.FilesServiceStub(channel)) is not None
    assert "serving WITHOUT caller authentication" in insecure.log_path.read_text()
