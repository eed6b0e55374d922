"""A replica that leaves an output folder the collector cannot fully take, end to end.

The real operator (local runtime), real replica processes, real Files and
FerretDB. What a replica leaves in its folder - a path longer than PATH_MAX,
a FIFO, links - never stops its service: the readable files are collected,
the rest is named in the replica's status message, the service finishes,
and terminate always completes (the local store's document, which plays the
Kubernetes finalizer's part, is removed).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable

from dtpoc_local import waiting
from tests.operator.test_local_runtime import (  # noqa: F401 - the fixture is used by name
    LocalOperator,
    local_operator_factory,
)

#: Writes a result, a FIFO, a link out of the folder and a file below a path
#: longer than PATH_MAX (relative steps, as any program can), then waits for
#: "go" when asked to.
HOSTILE = textwrap.dedent(
    """
    import os, pathlib, sys, time
    out = pathlib.Path(os.environ["OUTPUT_FOLDER"])
    (out / "result.json").write_text('{"ok": true}')
    os.mkfifo(out / "pipe")
    (out / "escape").symlink_to("/etc", target_is_directory=True)
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    for level in range(24):
        name = f"{level:03d}" + "d" * 197
        os.mkdir(name, dir_fd=fd)
        child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    deep = os.open("deep.csv", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(deep, b"deep,1\\n")
    os.close(deep)
    control = pathlib.Path(os.environ["CONTROL_DIR"])
    while os.environ.get("WAIT_FOR_GO") and not (control / "go").exists():
        time.sleep(0.05)
    """
)


def hostile_spec(op: LocalOperator, **env: str) -> dict[str, object]:
    return {
        "image": "ghcr.io/example/sim",
        "jobType": "ondemand",
        "reps": 1,
        "command": [sys.executable, "-c", HOSTILE],
        "env": {"CONTROL_DIR": str(op.control), **env},
    }


def test_unstorable_outputs_are_reported_and_the_service_finishes(
    local_operator_factory: Callable[..., LocalOperator],  # noqa: F811
) -> None:
    op = local_operator_factory()
    service_id = op.launch(hostile_spec(op))
    status = op.wait_status(service_id, lambda s: s.get("phase") == "succeeded", "succeeded")
    (replica,) = status["replicas"]
    assert replica["outputsCollected"] is True
    assert len(replica["outputFileIds"]) == 2, "result.json and the deep file"
    assert "pipe (a FIFO)" in replica["message"]
    assert "escape (a symbolic link (not followed))" in replica["message"]
    paths = sorted(f["metadata"]["path"] for f in op.files.outputs(service_id))
    assert paths[-1] == "result.json" and paths[0].endswith("/deep.csv")


def test_terminate_completes_whatever_the_folder_holds(
    local_operator_factory: Callable[..., LocalOperator],  # noqa: F811
) -> None:
    op = local_operator_factory()
    service_id = op.launch(hostile_spec(op, WAIT_FOR_GO="1"))
    op.wait_status(service_id, lambda s: s.get("active") == 1, "running")
    waiting.wait_for(
        lambda: any(op.output_root.rglob("pipe")), timeout=30, what="the replica's outputs"
    )
    op.terminate(service_id)
    waiting.wait_for(
        lambda: op.collection.find_one({"_id": service_id}) is None,
        timeout=60,
        what="terminate to finish (the document removed)",
        details=lambda: op.process.process.log_tail(30),
    )
    paths = sorted(f["metadata"]["path"] for f in op.files.outputs(service_id))
    assert "result.json" in paths and any(p.endswith("/deep.csv") for p in paths)
