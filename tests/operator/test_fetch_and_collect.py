"""``dtpoc-fetch-inputs`` and the output collector against the real Files service.

The entrypoint runs as a real subprocess, exactly as the init container runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dtpoc.files.v1alpha1 import files_pb2_grpc
from dtpoc_common import grpcauth
from dtpoc_local.credentials import credentials
from dtpoc_local.servers.files import FilesServer
from dtpoc_operator import collector as collector_mod
from tests.operator.helpers import KubeOperator, sha256


@pytest.fixture
def files_helper(files_server: FilesServer, tmp_path: Path) -> KubeOperator:
    channel = credentials().channel(files_server.address)
    return KubeOperator(
        kube=None,  # type: ignore[arg-type]
        namespace="",
        output_root=tmp_path,
        process=None,  # type: ignore[arg-type]
        files=files_pb2_grpc.FilesServiceStub(channel),
    )


def _token_for(inputs: object, *, expires_in: float = 600.0) -> str:
    """A fetch token as the operator mints it, for the ids in ``inputs``."""
    ids = [i["file_id"] for i in inputs if isinstance(i, dict)] if isinstance(inputs, list) else []
    return grpcauth.mint_fetch_token(
        credentials().fetch_key(),
        service_id="svc",
        file_ids=ids,
        expires_at=time.time() + expires_in,
    )


def _fetch(
    address: str, inputs: object, dest: Path, *, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the entrypoint as the init container does, with a token for ``inputs``
    (or ``token``)."""
    script = Path(sys.executable).parent / "dtpoc-fetch-inputs"
    env = {
        **os.environ,
        "DTPOC_FETCH_FILES_ADDRESS": address,
        "DTPOC_FETCH_INPUTS": inputs if isinstance(inputs, str) else json.dumps(inputs),
        "DTPOC_FETCH_INPUT_DIR": str(dest),
        "DTPOC_FETCH_TIMEOUT_SECONDS": "20",
        "DTPOC_FETCH_TOKEN": token if token is not None else _token_for(inputs),
    }
    return subprocess.run(
        [str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_fetches_every_input_verified_and_atomically(
    files_server: FilesServer, files_helper: KubeOperator, tmp_path: Path
) -> None:
    big = os.urandom(3 * 1024 * 1024 + 17)  # several download chunks
    small = b"a,b\n1,2\n"
    big_id = files_helper.upload("big.bin", big)
    small_id = files_helper.upload("small.csv", small)
    dest = tmp_path / "input"
    result = _fetch(
        files_server.address,
        [{"file_id": big_id, "name": "model.bin"}, {"file_id": small_id, "name": "input.csv"}],
        dest,
    )
    assert result.returncode == 0, result.stderr
    assert sha256((dest / "model.bin").read_bytes()) == sha256(big)
    assert (dest / "input.csv").read_bytes() == small
    assert sorted(p.name for p in dest.iterdir()) == ["input.csv", "model.bin"]  # no temp files


def test_missing_input_exits_2_with_a_clear_message(
    files_server: FilesServer, tmp_path: Path
) -> None:
    dest = tmp_path / "input"
    missing = "0123456789abcdef01234567"
    result = _fetch(files_server.address, [{"file_id": missing, "name": "input.xlsx"}], dest)
    assert result.returncode == 2
    assert f"input file {missing} (input.xlsx) does not exist" in result.stderr
    assert not any(dest.iterdir()) if dest.exists() else True


@pytest.mark.parametrize(
    "inputs",
    ["not json", json.dumps({"file_id": "x"}), json.dumps([{"file_id": "x", "name": "../x"}])],
)
def test_malformed_input_list_exits_2(
    files_server: FilesServer, tmp_path: Path, inputs: str
) -> None:
    result = _fetch(files_server.address, inputs, tmp_path / "input")
    assert result.returncode == 2
    assert "dtpoc-fetch-inputs:" in result.stderr


def test_unreachable_files_service_exits_1(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "dtpoc-fetch-inputs"
    env = {
        **os.environ,
        "DTPOC_FETCH_FILES_ADDRESS": "127.0.0.1:1",
        "DTPOC_FETCH_INPUTS": json.dumps([{"file_id": "0" * 24, "name": "a"}]),
        "DTPOC_FETCH_INPUT_DIR": str(tmp_path / "in"),
        "DTPOC_FETCH_TIMEOUT_SECONDS": "2",
    }
    result = subprocess.run(
        [str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    # The pod's log names the input it could not fetch, and why: the last retry's
    # UNAVAILABLE, or the overall deadline when that came first (timing decides).
    assert f"input a ({'0' * 24})" in result.stderr, result.stderr
    assert "UNAVAILABLE" in result.stderr or "deadline" in result.stderr, result.stderr


async def _collect(address: str, folder: Path) -> collector_mod.Collected:
    channel = credentials().aio_channel(address, as_=grpcauth.OPERATOR)
    try:
        collector = collector_mod.OutputCollector(
            files_pb2_grpc.FilesServiceStub(channel), max_parallel_uploads=2, timeout_seconds=20
        )
        return await collector.collect(folder, service_id="svc", replica_index=4, run="svc")
    finally:
        await channel.close()


def test_collector_never_follows_links_and_is_idempotent(
    files_server: FilesServer, files_helper: KubeOperator, tmp_path: Path
) -> None:
    """A replica controls its output folder: a symlink to the operator's own files is
    neither followed nor uploaded. Collecting twice answers the same ids (dedup), and
    removal deletes what was uploaded, the links, and the emptied folders."""
    secret = tmp_path / "operator-token"
    secret.write_text("operator service account token")
    folder = tmp_path / "svc" / "4"
    (folder / "nested").mkdir(parents=True)
    (folder / "result.json").write_text('{"ok": true}')
    (folder / "nested" / "table.csv").write_text("x\n1\n")
    (folder / "token").symlink_to(secret)
    (folder / "nested" / "dir-link").symlink_to(tmp_path, target_is_directory=True)

    first = asyncio.run(_collect(files_server.address, folder))
    second = asyncio.run(_collect(files_server.address, folder))
    assert first.file_ids == second.file_ids
    assert len(first.file_ids) == 2
    stored = files_helper.outputs("svc")
    assert sorted(f["metadata"]["path"] for f in stored) == ["nested/table.csv", "result.json"]
    assert all(f["metadata"]["replica_index"] == 4 for f in stored)
    assert not any(
        b"operator service account token" in files_helper.content(f["file_id"]) for f in stored
    )

    collector_mod.OutputCollector.remove_uploaded(folder, first)
    assert not folder.exists()
    assert secret.read_text() == "operator service account token"  # the target is untouched


def test_missing_folder_collects_nothing(files_server: FilesServer, tmp_path: Path) -> None:
    result = asyncio.run(_collect(files_server.address, tmp_path / "never-written"))
    assert result.file_ids == () and result.skipped == ()
