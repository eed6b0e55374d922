"""Local runtime: nothing a process replica starts outlives the replica.

A replica's command may leave processes behind that a process group does not
hold: a ``setsid`` child, a double-forked daemon, children that ignore
SIGTERM. They are the replica's all the same: when the replica is reported
finished, and when a terminate is over, none of them runs. Both ways the
supervisor finds them are tested: a cgroup per replica (where the host lets
the operator create one, as root here) and the subreaper fallback
(``DTPOC_OPERATOR_LOCAL_PROCESS_CGROUPS=off``, what a host without a writable
cgroup hierarchy gets).

Every process of the replica carries a marker (argv and environment), so the
test finds what is left through ``/proc`` without knowing pids in advance.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dtpoc_local import waiting
from dtpoc_operator.local import cgroups
from tests.operator.test_local_runtime import (  # noqa: F401 - the fixture is used by name
    WAIT,
    LocalOperator,
    local_operator_factory,
)

#: A process that reports its pid under ``CONTROL_DIR/<role>`` and then runs
#: until killed (ignoring SIGTERM when ``IGNORE_TERM`` is set).
#: argv: -c CODE <marker> <role>
SLEEPER = textwrap.dedent(
    """
    import os, pathlib, signal, sys, time
    if os.environ.get("IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pathlib.Path(os.environ["CONTROL_DIR"], sys.argv[2]).write_text(str(os.getpid()))
    while True:
        time.sleep(1)
    """
)

#: The replica: a ``setsid`` background child and a double-forked daemon, each
#: out of the replica's process group and session; then either exits 0 once
#: told to (``go``), or (``STAY``) ignores SIGTERM and runs on.
PROGRAM = textwrap.dedent(
    """
    import os, pathlib, signal, subprocess, sys, time
    control = pathlib.Path(os.environ["CONTROL_DIR"])
    marker, code = os.environ["ORPHAN_MARKER"], os.environ["SLEEPER_CODE"]
    if os.environ.get("IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen(["setsid", sys.executable, "-c", code, marker, "setsid"])
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", code, marker, "daemon"])
        os._exit(0)
    deadline = time.monotonic() + 60
    while not all((control / r).exists() for r in ("setsid", "daemon")):
        if time.monotonic() > deadline:
            sys.exit("the background processes did not start")
        time.sleep(0.02)
    (pathlib.Path(os.environ["OUTPUT_FOLDER"]) / "result.json").write_text('{"ok": true}')
    (control / "main").write_text(str(os.getpid()))
    while os.environ.get("STAY") or not (control / "go").exists():
        time.sleep(0.05)
    """
)

MODES = [pytest.param("auto", id="cgroup"), pytest.param("off", id="subreaper")]


def _is_root_with_cgroups() -> bool:
    return os.geteuid() == 0 and any(
        os.access(Path("/sys/fs/cgroup", h), os.W_OK) for h in ("freezer", "pids", ".")
    )


def marked_processes(marker: str) -> list[str]:
    """Running (not zombie) processes whose argv or environment holds ``marker``."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if stat[stat.rfind(")") + 2 :].startswith(("Z", "X")):
            continue
        if needle in argv or needle in environ:
            command = argv.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {command}")
    return found


@pytest.fixture
def marker() -> Iterator[str]:
    value = f"dtpoc-orphan-{uuid.uuid4().hex}"
    yield value
    for line in marked_processes(value):  # what a failing run left
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)


def _start(
    factory: Callable[..., LocalOperator], mode: str, marker: str, **env: str
) -> tuple[LocalOperator, str]:
    op = factory(DTPOC_OPERATOR_LOCAL_PROCESS_CGROUPS=mode)
    spec = op.spec(
        reps=1,
        command=[sys.executable, "-c", PROGRAM],
        env={"ORPHAN_MARKER": marker, "SLEEPER_CODE": SLEEPER, **env},
    )
    service_id = op.launch(spec)
    waiting.wait_for(
        lambda: (op.control / "main").exists(),
        timeout=WAIT,
        what="the replica and its background processes started",
        details=lambda: op.process.process.log_tail(20),
    )
    return op, service_id


def _pid_record(op: LocalOperator, service_id: str) -> dict[str, Any]:
    state = op.output_root / ".local-runtime" / service_id / "runs"
    (path,) = state.glob("*/*/*/pid.json")
    return dict(json.loads(path.read_text()))


def _check_mode(record: dict[str, Any], mode: str) -> None:
    """The path under test is the one the supervisor took."""
    if mode == "off":
        assert record.get("tree") is True and "cgroup" not in record
    elif _is_root_with_cgroups():
        assert record["cgroup"]["kind"] in ("v2", "freezer", "pids"), record


@pytest.mark.parametrize("mode", MODES)
def test_background_children_are_gone_when_the_replica_is_reported_finished(
    local_operator_factory: Callable[..., LocalOperator],  # noqa: F811
    marker: str,
    mode: str,
) -> None:
    op, service_id = _start(local_operator_factory, mode, marker)
    record = _pid_record(op, service_id)
    assert len(marked_processes(marker)) >= 3  # the command, the setsid child, the daemon
    (op.control / "go").touch()
    status = op.wait_status(service_id, lambda s: s.get("phase") == "succeeded", "succeeded")
    assert status["replicas"][0]["exitCode"] == 0
    # Reported finished: nothing of the replica may run any more.
    assert marked_processes(marker) == []
    _check_mode(record, mode)
    if "cgroup" in record:
        assert not Path(record["cgroup"]["path"]).exists()


@pytest.mark.parametrize("mode", MODES)
def test_terminate_leaves_nothing_of_children_that_ignore_sigterm(
    local_operator_factory: Callable[..., LocalOperator],  # noqa: F811
    marker: str,
    mode: str,
) -> None:
    op, service_id = _start(local_operator_factory, mode, marker, IGNORE_TERM="1", STAY="1")
    record = _pid_record(op, service_id)
    op.wait_status(service_id, lambda s: s.get("active") == 1, "running")
    op.terminate(service_id)
    # The document goes once the grace period (3 s here) is over and the kill is done.
    waiting.wait_for(
        lambda: op.collection.find_one({"_id": service_id}) is None,
        timeout=WAIT,
        what="the document removed after the replica was stopped",
        details=lambda: op.process.process.log_tail(20),
    )
    assert marked_processes(marker) == []
    _check_mode(record, mode)
    if "cgroup" in record:
        assert not Path(record["cgroup"]["path"]).exists()


@pytest.mark.skipif(not _is_root_with_cgroups(), reason="needs a writable cgroup hierarchy")
def test_a_killed_supervisor_leaves_nothing_of_its_replica_running(
    local_operator_factory: Callable[..., LocalOperator],  # noqa: F811
    marker: str,
) -> None:
    """SIGKILL of the supervisor's group (someone else's, not a terminate): the
    setsid child and the daemon are out of that group, but in the replica's cgroup,
    so the operator kills them before it reports the replica lost."""
    op, service_id = _start(local_operator_factory, "auto", marker, STAY="1")
    record = _pid_record(op, service_id)
    os.killpg(int(record["pgid"]), signal.SIGKILL)
    status = op.wait_status(service_id, lambda s: s.get("phase") == "failed", "failed")
    assert status["replicas"][0]["reason"] == "ProcessLost"
    assert marked_processes(marker) == []
    assert not Path(record["cgroup"]["path"]).exists()


#: Forks for ever, each child in a session of its own (argv carries the marker).
FORKER = textwrap.dedent(
    """
    import os, time
    while True:
        if os.fork() == 0:
            os.setsid()
            while True:
                time.sleep(1)
        time.sleep(0.005)
    """
)


@pytest.mark.parametrize("kind", ["freezer", "pids"])
def test_a_cgroup_kill_leaves_nothing_of_a_tree_that_keeps_forking(
    kind: cgroups.Kind, marker: str
) -> None:
    """Both v1 hierarchies the supervisor may use (freezer here, pids where there
    is no freezer) end every member even while new ones are being forked."""
    hierarchy = Path("/sys/fs/cgroup", kind)
    if not os.access(hierarchy, os.W_OK):
        pytest.skip(f"{hierarchy} is not writable")
    path = hierarchy / cgroups.CGROUP_PARENT / f"test-{uuid.uuid4().hex}"
    path.mkdir(parents=True)
    cgroup = cgroups.ProcessCgroup(kind=kind, path=path)
    with cgroup.entered():
        forker = subprocess.Popen([sys.executable, "-c", FORKER, marker])
    try:
        waiting.wait_for(lambda: len(cgroup.live_pids()) >= 10, timeout=WAIT, what="forks")
        assert cgroup.end()
        assert marked_processes(marker) == []
    finally:
        forker.kill()
        forker.wait()
    waiting.wait_for(lambda: cgroup.remove(wait_seconds=0), timeout=WAIT, what="cgroup removed")
