"""The input fetcher's credential: minted by the operator into the init container only,
scoped to the service's inputs, refused by the real Files service for anything else."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dtpoc.files.v1alpha1 import files_pb2_grpc
from dtpoc_common import analytics, grpcauth
from dtpoc_local.credentials import credentials
from dtpoc_local.servers.files import FilesServer
from dtpoc_operator import fetch_inputs, fetch_tokens, model
from dtpoc_operator.kube import manifests
from dtpoc_operator.model import AnalyticsResource, ServiceKey, Status
from tests.files import helpers

SID = "0123456789abcdef01234567"


def _resource(inputs: dict[str, str], *, job_type: str = "ondemand") -> AnalyticsResource:
    body: dict[str, Any] = {"image": "example/analysis", "jobType": job_type, "reps": 1}
    body["inputFiles"] = inputs
    if job_type == "scheduled":
        body["schedule"] = "*/5 * * * *"
    return AnalyticsResource(
        key=ServiceKey("ns", SID),
        uid="u1",
        generation=1,
        spec=model.ServiceSpec.from_proto(analytics.spec_from_dict(body)),
        status=Status(),
    )


def _settings(*, clock: float = 1_800_000_000.0) -> manifests.ChildSettings:
    minter = fetch_tokens.FetchTokens(
        key=credentials().fetch_key(), ttl_seconds=3600, clock=lambda: clock
    )
    return manifests.ChildSettings(
        init_image="dtpoc:test", output_pvc="out", files_address="files:50051", fetch_tokens=minter
    )


def _pod(body: dict[str, Any]) -> dict[str, Any]:
    spec = body["spec"]
    template = (
        spec["jobTemplate"]["spec"]["template"] if "jobTemplate" in spec else spec["template"]
    )
    pod: dict[str, Any] = template["spec"]
    return pod


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


def test_only_the_init_container_gets_a_token_for_exactly_the_inputs() -> None:
    inputs = {"aaaaaaaaaaaaaaaaaaaaaaaa": "input.xlsx", "bbbbbbbbbbbbbbbbbbbbbbbb": "model.bin"}
    pod = _pod(manifests.job(_resource(inputs), _settings()))
    (init,) = pod["initContainers"]
    (main,) = pod["containers"]
    token = _env(init)[fetch_inputs.ENV_TOKEN]
    assert not any(token in value for value in _env(main).values())
    assert fetch_inputs.ENV_TOKEN not in _env(main)
    grant = grpcauth.verify_fetch_token(credentials().fetch_key(), token, now=1_800_000_000)
    assert grant.service_id == SID
    assert grant.file_ids == frozenset(inputs)
    # Valid for one to two windows: pods the Job creates later (retries) still fetch.
    assert 1_800_000_000 + 3600 <= grant.expires_at <= 1_800_000_000 + 2 * 3600


def test_the_template_is_stable_within_a_window_and_renewed_after_it() -> None:
    """Same token between reconciles (no spurious updates); a CronJob gets a fresh one."""
    resource = _resource({"aaaaaaaaaaaaaaaaaaaaaaaa": "input.xlsx"}, job_type="scheduled")
    start = 1_800_000_000.0 - (1_800_000_000 % 3600)
    first = manifests.cronjob(resource, _settings(clock=start + 10))
    again = manifests.cronjob(resource, _settings(clock=start + 3000))
    later = manifests.cronjob(resource, _settings(clock=start + 3600 + 10))
    hash_of = manifests.SPEC_HASH_ANNOTATION
    assert first["metadata"]["annotations"][hash_of] == again["metadata"]["annotations"][hash_of]
    assert first["metadata"]["annotations"][hash_of] != later["metadata"]["annotations"][hash_of]


def _run_fetcher(env: dict[str, str], dest: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "dtpoc-fetch-inputs"
    return subprocess.run(
        [str(script)],
        env={**os.environ, **env, "DTPOC_FETCH_INPUT_DIR": str(dest)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_minted_token_fetches_its_inputs_and_nothing_else(
    files_server: FilesServer, files_stub: files_pb2_grpc.FilesServiceStub, tmp_path: Path
) -> None:
    mine = helpers.upload(files_stub, b"mine\n", "input.csv").file_id
    other = helpers.upload(files_stub, b"another service's\n", "other.csv").file_id
    pod = _pod(manifests.job(_resource({mine: "input.csv"}), _settings(clock=time.time())))
    env = _env(pod["initContainers"][0])
    env[fetch_inputs.ENV_ADDRESS] = files_server.address

    fetched = _run_fetcher(env, tmp_path / "in")
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "in" / "input.csv").read_bytes() == b"mine\n"

    # A replica that rewrote the list to another service's file gets a refusal, not bytes.
    env[fetch_inputs.ENV_INPUTS] = fetch_inputs.inputs_json({other: "stolen.csv"})
    refused = _run_fetcher(env, tmp_path / "in2")
    assert refused.returncode == fetch_inputs.EXIT_MISSING
    assert "PERMISSION_DENIED" in refused.stderr
    assert not (tmp_path / "in2" / "stolen.csv").exists()

    # Without the token, nothing at all.
    del env[fetch_inputs.ENV_TOKEN]
    env[fetch_inputs.ENV_INPUTS] = fetch_inputs.inputs_json({mine: "input.csv"})
    anonymous = _run_fetcher(env, tmp_path / "in3")
    assert anonymous.returncode == fetch_inputs.EXIT_MISSING
    assert "UNAUTHENTICATED" in anonymous.stderr
