"""The local runtime's container runner, one replica at a time, through its real supervisor.

Each test writes an attempt's ``spec.json`` as the runtime does and runs
``python -m dtpoc_operator.local.replica <attempt>``; the container runs for
real (podman + runc, the image of :mod:`tests.operator._runner_image`, uid
10001). What is checked is what a user of the platform would see: the exit
record the status is made of, what the program saw inside, what is left
running afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dtpoc_common import analytics
from dtpoc_local import images, waiting
from dtpoc_operator import collector, model
from dtpoc_operator.local import container_run, containers
from dtpoc_operator.model import AnalyticsResource, ServiceKey, Status
from tests.operator import _runner_image

WAIT = 120.0
OTHER_UID = 12345
"""An operator uid that is neither root nor the container's 10001."""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> containers.Engine:
    available, reason = images.engine_available()
    if not available:
        pytest.skip(f"no container engine: {reason}")
    found = containers.detect(
        "podman",
        oci_runtime="runc",
        containers_conf="",
        state_root=tmp_path_factory.mktemp("engine"),
    )
    assert found is not None
    return found


@pytest.fixture(scope="module")
def image(engine: containers.Engine) -> str:
    return _runner_image.runner_image()


@dataclass
class Attempt:
    path: Path
    output: Path
    job: containers.ContainerJob

    def exit_record(self) -> dict[str, Any]:
        return dict(json.loads((self.path / "exit.json").read_text()))

    def log(self) -> str:
        return (self.path / "log").read_text(errors="replace")


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A folder every uid can traverse (pytest's own tmp folders are root's, 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="dtpoc-runner-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def resource(*, env: dict[str, str], inputs: dict[str, str], limits: dict[str, str]) -> Any:
    spec = analytics.spec_from_dict(
        {
            "image": "example/runner",
            "jobType": "ondemand",
            "reps": 2,
            "env": env,
            "inputFiles": inputs,
            "resources": {"limits": limits},
        }
    )
    return AnalyticsResource(
        key=ServiceKey("", "svc1"),
        uid="u1",
        generation=1,
        spec=model.ServiceSpec.from_proto(spec),
        status=Status(),
    )


def prepare(
    workdir: Path,
    engine: containers.Engine,
    *,
    image: str,
    program: str,
    env: dict[str, str] | None = None,
    input_files: dict[str, bytes] | None = None,
    limits: dict[str, str] | None = None,
    collector_uid: int = 0,
    grace_seconds: float = 3.0,
) -> Attempt:
    """An attempt folder as :class:`LocalRuntime` writes it, inputs already fetched."""
    run_id = f"svc1-1-{os.urandom(3).hex()}"
    attempt = workdir / "attempt"
    input_dir = attempt / "input"
    input_dir.mkdir(parents=True)
    for name, data in (input_files or {}).items():
        (input_dir / name).write_bytes(data)
    output = workdir / "outputs" / "svc1" / "1"
    owner = resource(
        env={"PROGRAM": textwrap.dedent(program), **(env or {})},
        inputs={f"{i:024x}": name for i, name in enumerate(input_files or {})},
        limits=limits or {},
    )
    memory, cpus = containers.limits_of(owner.spec.limits)
    job = containers.ContainerJob(
        name=containers.container_name(run_id),
        image=image,
        env=containers.container_env(owner, run="svc1", index=1, run_id=run_id),
        input_dir=str(input_dir),
        output_dir=str(output),
        labels={"dtpoc.test": "runner"},
        memory_bytes=memory,
        cpus=cpus,
    )
    spec = {
        "input_dir": str(input_dir),
        "output_dir": str(output),
        "inputs": [],
        "files_address": "127.0.0.1:1",
        "container": {
            "engine": engine.to_dict(),
            "job": job.to_dict(),
            "grace_seconds": grace_seconds,
            "collector_uid": collector_uid,
        },
    }
    (attempt / "spec.json").write_text(json.dumps(spec))
    return Attempt(path=attempt, output=output, job=job)


def supervise(attempt: Attempt, *, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """The supervisor, started from ``cwd`` (the operator's working folder; default: ours)."""
    return subprocess.Popen(
        [sys.executable, "-m", "dtpoc_operator.local.replica", str(attempt.path)],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def run_to_end(attempt: Attempt, *, cwd: Path | None = None) -> dict[str, Any]:
    process = supervise(attempt, cwd=cwd)
    try:
        process.wait(timeout=WAIT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return attempt.exit_record()


def containers_named(engine: containers.Engine, name: str) -> list[str]:
    answer = engine.cli("ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Names}}")
    return answer.stdout.split()


SEE = """
    import json, os, pathlib
    seen = {"env": dict(os.environ), "uid": os.getuid(), "input": sorted(os.listdir("/input"))}
    seen["data"] = pathlib.Path(os.environ["INPUT_DATA_CSV"]).read_text()
    try:
        pathlib.Path("/input/new").write_text("x")
        seen["input_writable"] = True
    except OSError as error:
        seen["input_writable"] = error.strerror
    seen["cpu_quota"] = pathlib.Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text().strip()
    pathlib.Path(os.environ["OUTPUT_FOLDER"], "seen.json").write_text(json.dumps(seen))
"""


def test_container_sees_the_pod_environment_and_mounts(
    workdir: Path, engine: containers.Engine, image: str
) -> None:
    attempt = prepare(
        workdir,
        engine,
        image=image,
        program=SEE,
        env={"SEED": "7", "OUTPUT_FOLDER": "/elsewhere"},
        input_files={"data.csv": b"a,b\n1,2\n"},
        limits={"cpu": "500m"},
    )
    assert run_to_end(attempt)["exit_code"] == 0, attempt.log()
    seen = json.loads((attempt.output / "seen.json").read_text())
    env = seen["env"]
    run_id = attempt.job.env["RUN_ID"]
    assert {k: env.get(k) for k in attempt.job.env if k != "PROGRAM"} == {
        "DTPOC_SERVICE_ID": "svc1",
        "DTPOC_ATTEMPT": "1",  # the first attempt; a retry's replica sees the next
        "RUN_ID": run_id,
        "REPLICA_INDEX": "1",
        "JOB_COMPLETION_INDEX": "1",
        "OUTPUT_FOLDER": "/output",  # the spec cannot move it, as in a pod
        "INPUT_FOLDER": "/input",
        "INPUT_DATA_CSV": "/input/data.csv",
        "SEED": "7",
    }
    assert not [
        k for k in env if k.startswith("DTPOC_") and k not in {"DTPOC_SERVICE_ID", "DTPOC_ATTEMPT"}
    ]
    assert "CONTAINERS_CONF" not in env  # the engine's settings stay outside
    assert seen["uid"] == 10001
    assert seen["input"] == ["data.csv"] and seen["data"] == "a,b\n1,2\n"
    assert seen["input_writable"] == "Read-only file system"
    assert seen["cpu_quota"] == "50000"  # 0.5 of the default 100000 us period
    assert containers_named(engine, attempt.job.name) == []


def test_exit_code_is_reported_as_error_with_the_log_tail(
    workdir: Path, engine: containers.Engine, image: str
) -> None:
    attempt = prepare(
        workdir,
        engine,
        image=image,
        program="import sys\nprint('the workbook has no Staff sheet', flush=True)\nsys.exit(3)",
    )
    record = run_to_end(attempt)
    assert (record["exit_code"], record["reason"]) == (3, "Error")
    assert "the workbook has no Staff sheet" in record["message"]
    assert containers_named(engine, attempt.job.name) == []


def test_memory_limit_kill_is_reported_as_oomkilled(
    workdir: Path, engine: containers.Engine, image: str
) -> None:
    attempt = prepare(
        workdir,
        engine,
        image=image,
        program="""
            block = bytearray(300 * 1024 * 1024)
            for i in range(0, len(block), 4096):
                block[i] = 1
        """,
        limits={"memory": "64Mi"},
    )
    started_from = workdir / "operator-cwd"
    started_from.mkdir()
    record = run_to_end(attempt, cwd=started_from)
    assert (record["exit_code"], record["reason"]) == (137, "OOMKilled"), attempt.log()
    # podman's conmon drops an "oom" file into its working folder: not the operator's.
    assert list(started_from.iterdir()) == []
    assert str(64 * 1024 * 1024) in record["message"]
    assert containers_named(engine, attempt.job.name) == []
    assert not (container_run.CGROUP_ROOT / "memory" / "dtpoc" / attempt.job.name).exists()


def test_memory_below_the_limit_is_no_oom(
    workdir: Path, engine: containers.Engine, image: str
) -> None:
    attempt = prepare(
        workdir,
        engine,
        image=image,
        program="""
            import sys
            block = bytearray(16 * 1024 * 1024)
            for i in range(0, len(block), 4096):
                block[i] = 1
            sys.exit(137)  # the same code as a kill, and still no OOM
        """,
        limits={"memory": "64Mi"},
    )
    record = run_to_end(attempt)
    assert (record["exit_code"], record["reason"]) == (137, "Error"), attempt.log()


def test_missing_image_is_err_image_never_pull(workdir: Path, engine: containers.Engine) -> None:
    missing = "localhost/dtpoc-no-such-image:never"
    attempt = prepare(workdir, engine, image=missing, program="pass")
    record = run_to_end(attempt)
    assert record["reason"] == "ErrImageNeverPull"
    assert record["exit_code"] is None
    assert (
        f'Container image "{missing}" is not present with pull policy of Never'
        in (record["message"])
    )


def test_sigterm_stops_the_container_within_the_grace_period(
    workdir: Path, engine: containers.Engine, image: str
) -> None:
    attempt = prepare(
        workdir,
        engine,
        image=image,
        program="""
            import signal, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a program that will not stop
            while True:
                time.sleep(1)
        """,
        grace_seconds=2,
    )
    process = supervise(attempt)
    try:
        waiting.wait_for(
            lambda: engine.inspect_state(attempt.job.name) or {},
            timeout=WAIT,
            what="the container to run",
        )
        waiting.wait_for(
            lambda: (engine.inspect_state(attempt.job.name) or {}).get("Running"),
            timeout=WAIT,
            what="the container to run",
        )
        os.killpg(process.pid, signal.SIGTERM)  # what terminate sends
        process.wait(timeout=WAIT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    record = attempt.exit_record()
    assert (record["exit_code"], record["signal"]) == (137, 15)  # killed after the grace
    assert containers_named(engine, attempt.job.name) == []


WRITE_NESTED = """
    import os, pathlib
    out = pathlib.Path("/output")
    (out / "kpis.json").write_text("{}")
    (out / "plots" / "daily").mkdir(parents=True)
    (out / "plots" / "daily" / "wip.csv").write_text("day,wip\\n1,3\\n")
"""


def _remove_as(uid: int, folder: Path) -> int:
    """The collector's scan and removal in a child running as ``uid``; its exit code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.setgid(uid)
            os.setuid(uid)
            found = collector.scan(folder)
            done = collector.Collected(
                file_ids=(), uploaded=tuple(f.path for f in found), skipped=(), bytes=0
            )
            collector.OutputCollector.remove_uploaded(folder, done)
            code = 0 if len(found) == 2 else 2
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_outputs_written_as_the_image_user_are_removed_by_another_operator_uid(
    workdir: Path, engine: containers.Engine, image: str
) -> None:
    attempt = prepare(workdir, engine, image=image, program=WRITE_NESTED, collector_uid=OTHER_UID)
    attempt.output.parent.mkdir(parents=True)
    os.chown(attempt.output.parent, OTHER_UID, OTHER_UID)  # the operator's own folders
    assert run_to_end(attempt)["exit_code"] == 0, attempt.log()
    nested = attempt.output / "plots" / "daily" / "wip.csv"
    assert nested.stat().st_uid == 10001 and nested.parent.stat().st_uid == 10001
    assert _remove_as(OTHER_UID, attempt.output) == 0
    assert not attempt.output.exists()  # files, sub-folders and the folder itself


def test_without_the_operator_acl_another_uid_could_not_remove_them(
    workdir: Path, engine: containers.Engine, image: str
) -> None:
    """The control case of the test above: what the default ACL is for."""
    attempt = prepare(workdir, engine, image=image, program=WRITE_NESTED, collector_uid=0)
    assert run_to_end(attempt)["exit_code"] == 0, attempt.log()
    with contextlib.suppress(OSError):
        _remove_as(OTHER_UID, attempt.output)
    assert (attempt.output / "plots" / "daily" / "wip.csv").exists()
