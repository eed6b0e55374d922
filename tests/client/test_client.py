"""``dtpoc_client.Client``'s typed methods against the real platform, over REST and gRPC.

The same moves through both transports on one platform: REST through the
gateway (with the API token), gRPC straight to Files and the Orchestrator
(with the gateway's component token, the one credential both accept for the
REST methods). Answers are the generated messages; refusals are the typed
errors with the server's code and words.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from google.protobuf import json_format

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_client import Client, errors
from tests.client._platform import LAUNCH_YAML, SAMPLE, Platform

pytestmark = pytest.mark.slow

SAMPLE_SHA256 = hashlib.sha256(SAMPLE.read_bytes()).hexdigest()


def clients(platform: Platform) -> Iterator[tuple[str, Client]]:
    yield "rest", Client(platform.server, platform.token)
    yield (
        "grpc",
        Client(
            f"grpc://{platform.orchestrator_address}",
            platform.grpc_token,
            files_server=f"grpc://{platform.files_address}",
        ),
    )


def launch_body(file_id: str, *, command: list[str] | None = None) -> dict[str, object]:
    return {
        "image": "dtpoc-histolab",
        "version": "local",
        "description": "client test",
        "env": {"SIM_HOURS": "24", "INPUT_EXCEL_FILE": "/input/input.xlsx"},
        "mount_files": {file_id: "input.xlsx"},
        "ana": {"job_type": "ondemand", "reps": 2},
        "command": command or ["dtpoc-histolab"],
    }


def check_files(client: Client, tmp: Path) -> str:
    seen: list[int] = []
    uploaded = client.files.upload(SAMPLE, filename="input.xlsx", progress=seen.append)
    assert sum(seen) == SAMPLE.stat().st_size, "progress hears every byte"
    again = client.files.upload(SAMPLE)
    assert again.file_id == uploaded.file_id and again.deduplicated
    assert again.message == "File already exists"

    record = client.files.info(uploaded.file_id)
    assert (record.filename, record.length, record.sha256) == (
        "input.xlsx",
        SAMPLE.stat().st_size,
        SAMPLE_SHA256,
    )
    assert uploaded.file_id in [f.file_id for f in client.files.list(filename="input.xlsx")]
    assert client.files.list(limit=1, filename="no-such-name") == []

    target = tmp / "copy.xlsx"
    sizes: list[int] = []
    info = client.files.download(uploaded.file_id, target, on_info=lambda i: sizes.append(i.length))
    assert target.read_bytes() == SAMPLE.read_bytes()
    assert sizes == [SAMPLE.stat().st_size] and info.filename == "input.xlsx"
    buffer = io.BytesIO()
    client.files.download(uploaded.file_id, buffer)
    assert buffer.getvalue() == SAMPLE.read_bytes()

    with pytest.raises(errors.NotFound) as missing:
        client.files.info("0" * 24)
    assert (missing.value.code, missing.value.status) == (404, "NOT_FOUND")
    assert missing.value.message
    with pytest.raises(errors.NotFound):
        client.files.download("0" * 24, tmp / "never")
    assert not (tmp / "never").exists(), "a failed download leaves no file"
    return uploaded.file_id


def check_services(client: Client, file_id: str) -> None:
    launched = client.services.launch(launch_body(file_id))
    statuses = list(client.services.watch(launched.id))
    assert statuses[-1].phase == "succeeded", statuses[-1]
    assert len({s.SerializeToString(deterministic=True) for s in statuses}) == len(statuses), (
        "watch yields changes, not repeats"
    )

    status = client.services.status(launched.id)
    assert isinstance(status, orchestrator_pb2.ServiceStatus)
    assert (status.succeeded_runs, status.total_runs) == (2, 2)
    record = client.services.get(launched.id)
    assert record.id == launched.id and record.mount_files == {file_id: "input.xlsx"}
    assert launched.id in [s.id for s in client.services.list(limit=100)]
    assert all(s.phase == "succeeded" for s in client.services.list(status="succeeded"))

    output = client.services.output(launched.id, 1)
    kpis = json_format.MessageToDict(output.output)
    assert kpis["schema"] == "dtpoc.histolab.kpis/v1" and kpis["replica_index"] == 1
    replicas = client.services.outputs(launched.id)
    assert [r.idx for r in replicas] == [0, 1]
    assert all(r.state == "succeeded" and len(r.files) == 1 for r in replicas)
    usage = client.files.usage(file_id)
    assert launched.id in usage.active_service_ids
    whole = "".join(client.services.logs(launched.id, 1))
    assert "".join(client.services.logs(launched.id, 1, follow=True)) == whole
    assert "".join(client.services.logs(launched.id, 1, tail_lines=0)) == ""
    with pytest.raises(errors.NotFound):
        "".join(client.services.logs(launched.id, 2))

    ended = client.services.terminate(launched.id)
    assert ended.service.phase == "terminated" and ended.message
    assert launched.id in client.files.usage(file_id).terminated_service_ids

    with pytest.raises(errors.ApiError) as not_again:
        client.services.retry(launched.id)
    assert not_again.value.code == 400 and "terminated" in not_again.value.message
    copy = client.services.resubmit(launched.id)
    assert client.services.get(copy).resubmitted_from == launched.id
    assert list(client.services.get(launched.id).resubmissions) == [copy]
    with pytest.raises(errors.ApiError) as not_scheduled:
        client.services.suspend(copy)
    assert "only a scheduled service" in not_scheduled.value.message
    client.services.terminate(copy)

    with pytest.raises(errors.InvalidArgument) as refused:
        client.services.launch({**launch_body(file_id), "ana": {"job_type": "ondemand", "reps": 0}})
    assert refused.value.code == 400 and "reps" in refused.value.message
    with pytest.raises(errors.InvalidSpec):
        client.services.launch({"image": "x", "replicas": 2})
    with pytest.raises(errors.NotFound):
        list(client.services.watch("0" * 24))


def test_typed_methods_over_rest_and_grpc(client_platform: Platform, tmp_path: Path) -> None:
    for name, client in clients(client_platform):
        with client:
            assert client.healthz() == "ok"
            assert client.api_version() == "v1alpha1"
            release = client.version()
            assert (release.version, release.api_version) == (
                metadata.version("dtpoc-orchestrator"),
                "v1alpha1",
            ), "the release the platform runs, the same through either transport"
            workdir = tmp_path / name
            workdir.mkdir()
            file_id = check_files(client, workdir)
            check_services(client, file_id)
            deleted = client.files.delete(file_id, force=True)
            assert deleted.message, deleted


def test_a_wrong_token_is_refused_in_the_servers_words(client_platform: Platform) -> None:
    with Client(client_platform.server, "wrong-" + "x" * 24) as client:
        with pytest.raises(errors.Unauthenticated) as refused:
            client.files.list()
        assert refused.value.code == 401
        assert refused.value.message == "the bearer token is not valid"
    grpc_target = f"grpc://{client_platform.orchestrator_address}"
    with Client(grpc_target, "wrong-" + "x" * 24) as client:
        with pytest.raises(errors.Unauthenticated) as over_grpc:
            client.services.list()
        assert over_grpc.value.status == "UNAUTHENTICATED"
    with Client("http://127.0.0.1:9") as nobody, pytest.raises(errors.ConnectionFailed):
        nobody.healthz()


def test_the_example_launch_file_is_a_launch_body() -> None:
    import yaml

    from dtpoc_client.api import launch_request

    request = launch_request(yaml.safe_load(LAUNCH_YAML.read_text()))
    assert request.ana.job_type == "ondemand" and request.ana.reps == 2
    assert request.command == ["dtpoc-histolab"]


async def test_the_async_client_for_notebooks(client_platform: Platform, tmp_path: Path) -> None:
    from dtpoc_client.aio import AsyncClient

    async with AsyncClient(client_platform.server, client_platform.token) as client:
        assert await client.healthz() == "ok"
        assert (await client.version()).version == metadata.version("dtpoc-orchestrator")
        uploaded = await client.files.upload(SAMPLE)
        assert (await client.files.info(uploaded.file_id)).sha256 == SAMPLE_SHA256
        launched = await client.services.launch(launch_body(uploaded.file_id))
        phases = [status.phase async for status in client.services.watch(launched.id)]
        assert phases[-1] == "succeeded", phases
        kpis = json_format.MessageToDict((await client.services.output(launched.id, 0)).output)
        assert kpis["replica_index"] == 0
        assert [r.idx for r in await client.services.outputs(launched.id)] == [0, 1]
        await client.files.download(uploaded.file_id, tmp_path / "copy.xlsx")
        assert (tmp_path / "copy.xlsx").read_bytes() == SAMPLE.read_bytes()
        with pytest.raises(errors.NotFound):
            await client.services.status("0" * 24)
        assert (await client.services.terminate(launched.id)).service.phase == "terminated"


def test_every_service_method_has_its_async_twin() -> None:
    """A method added to Services (retry, resubmit, suspend, resume...) reaches notebooks too."""
    from dtpoc_client import aio, api

    def public(cls: type) -> set[str]:
        return {name for name in vars(cls) if not name.startswith("_")}

    assert public(api.Services) <= public(aio.AsyncServices)
    assert public(api.Files) <= public(aio.AsyncFiles)
