"""The local runtime with its container runner on: the operator process, a real store,
real Files, real podman containers (the image of :mod:`tests.operator._runner_image`).

What a user notices: a launch without a command runs the image and its outputs
reach Files; a replica whose supervisor is killed with its whole group is
reported lost and its container does not run on; a restarted operator adopts
a running container replica.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from dtpoc_local import images, waiting
from dtpoc_operator.local import containers
from tests.operator import _runner_image
from tests.operator.test_local_runtime import (  # the fixture, for this module too
    LocalOperator,
    local_operator_factory,  # noqa: F401
)

WAIT = 120.0

PROGRAM = textwrap.dedent(
    """
    import json, os, pathlib, time
    out = pathlib.Path(os.environ["OUTPUT_FOLDER"])
    while os.environ.get("WAIT_FOR") and not pathlib.Path(os.environ["WAIT_FOR"]).exists():
        time.sleep(0.1)
    (out / "result.json").write_text(json.dumps({
        "replica": os.environ["REPLICA_INDEX"], "run_id": os.environ["RUN_ID"],
        "input": pathlib.Path(os.environ["INPUT_DATA_CSV"]).read_text(), "uid": os.getuid(),
    }))
    """
)


@pytest.fixture(scope="module")
def image() -> str:
    available, reason = images.engine_available()
    if not available:
        pytest.skip(f"no container engine: {reason}")
    return _runner_image.runner_image()


@pytest.fixture
def container_operator(
    local_operator_factory: Callable[..., LocalOperator],  # noqa: F811 - the imported fixture
    image: str,
) -> LocalOperator:
    return local_operator_factory(DTPOC_OPERATOR_LOCAL_CONTAINER_ENGINE="podman")


def spec(image: str, *, input_id: str, reps: int, **env: str) -> dict[str, Any]:
    name, _, tag = image.rpartition(":")
    return {
        "image": name,
        "version": tag,
        "jobType": "ondemand",
        "reps": reps,
        "env": {"PROGRAM": PROGRAM, **env},
        "inputFiles": {input_id: "data.csv"},
    }


def engine_names(service_id: str) -> list[str]:
    """The service's containers (running or not), from the engine itself."""
    label = containers.service_label(service_id)
    answer = subprocess.run(
        images.podman_argv("ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}"),
        env=images.podman_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return answer.stdout.split()


def test_a_launch_without_command_runs_the_image(
    container_operator: LocalOperator, image: str
) -> None:
    op = container_operator
    input_id = op.files.upload("data.csv", b"a,b\n1,2\n")
    service_id = op.launch(spec(image, input_id=input_id, reps=2))
    status = op.wait_status(
        service_id,
        lambda s: (
            s.get("phase") == "succeeded"
            and all(r.get("outputsCollected") for r in s.get("replicas", []))
        ),
        "succeeded and collected",
    )
    for index in range(2):
        replica = next(r for r in status["replicas"] if r.get("index", 0) == index)
        (file_id,) = replica["outputFileIds"]
        result = json.loads(op.files.content(file_id))
        assert result == {
            "replica": str(index),
            "run_id": f"{service_id}-{index}",
            "input": "a,b\n1,2\n",
            "uid": 10001,
        }
    assert engine_names(service_id) == []


def test_a_killed_supervisor_group_leaves_no_container_running(
    container_operator: LocalOperator, image: str
) -> None:
    op = container_operator
    input_id = op.files.upload("data.csv", b"x\n")
    service_id = op.launch(spec(image, input_id=input_id, reps=1, WAIT_FOR="/nonexistent/never"))
    waiting.wait_for(
        lambda: len(engine_names(service_id)) == 1, timeout=WAIT, what="the container to exist"
    )
    pid_files = list((op.output_root / ".local-runtime" / service_id).rglob("pid.json"))
    (pid_file,) = pid_files
    os.killpg(int(json.loads(pid_file.read_text())["pgid"]), signal.SIGKILL)
    status = op.wait_status(service_id, lambda s: s.get("phase") == "failed", "failed")
    (replica,) = status["replicas"]
    assert replica["reason"] == "ProcessLost"
    waiting.wait_for(
        lambda: engine_names(service_id) == [],
        timeout=WAIT,
        what="the lost replica's container removed",
        details=lambda: str(engine_names(service_id)),
    )


def test_a_restarted_operator_adopts_a_running_container(
    container_operator: LocalOperator, image: str
) -> None:
    op = container_operator
    input_id = op.files.upload("data.csv", b"y\n")
    service_id = op.launch(spec(image, input_id=input_id, reps=1, WAIT_FOR="/input/go"))
    op.wait_status(service_id, lambda s: s.get("active") == 1, "running")
    op.process.kill()
    op.process = op.process.restart()
    (input_dir,) = list((op.output_root / ".local-runtime" / service_id).rglob("input"))
    (input_dir / "go").touch()  # the host side of the container's read-only /input
    status = op.wait_status(
        service_id,
        lambda s: (
            s.get("phase") == "succeeded"
            and all(r.get("outputsCollected") for r in s.get("replicas", []))
        ),
        "succeeded after the restart",
    )
    (replica,) = status["replicas"]
    assert replica["podName"] == f"{service_id}-0", "the same attempt, not a second run"
    assert engine_names(service_id) == []
