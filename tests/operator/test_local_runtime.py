"""The local runtime: Analytics documents in MongoDB (FerretDB), replicas as real processes.

Nothing is a double here: the store is a real MongoDB-protocol server, each
replica is a real Python process under the operator's supervisor, outputs
go to the real Files service.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymongo
import pymongo.errors
import pytest

from dtpoc.files.v1alpha1 import files_pb2_grpc
from dtpoc_common import analytics, changes
from dtpoc_local import waiting
from dtpoc_local.credentials import credentials
from dtpoc_local.databases import unique_db_name
from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.operator import OperatorProcess
from tests.operator.helpers import KubeOperator, new_service_id

WAIT = 60.0

#: A small analytics program: writes a JSON result per replica, optionally waits
#: for a "go" file, and records its pid (and a grandchild's) for the test.
PROGRAM = textwrap.dedent(
    """
    import json, os, pathlib, subprocess, sys, time
    control = pathlib.Path(os.environ["CONTROL_DIR"])
    index = os.environ["REPLICA_INDEX"]
    (control / f"pid-{index}").write_text(str(os.getpid()))
    if os.environ.get("SPAWN_GRANDCHILD"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        (control / f"grandchild-{index}").write_text(str(child.pid))
    with open(control / "runs.log", "a") as log:
        log.write(f"{index}\\n")
    while os.environ.get("WAIT_FOR_GO") and not (control / f"go-{index}").exists():
        time.sleep(0.05)
    out = pathlib.Path(os.environ["OUTPUT_FOLDER"])
    data_file = os.environ.get("INPUT_DATA_CSV")
    data = pathlib.Path(data_file).read_text() if data_file else ""
    (out / "result.json").write_text(json.dumps({
        "replica": int(index), "run_id": os.environ["RUN_ID"], "input": data,
        "seed": os.environ.get("SEED"), "excel": os.environ.get("INPUT_EXCEL_FILE"),
    }))
    sys.exit(int(os.environ.get("EXIT_CODE", "0")))
    """
)


@dataclass
class LocalOperator:
    collection: Any
    process: OperatorProcess
    output_root: Path
    control: Path
    files: KubeOperator  # reused for its Files helpers only

    def launch(self, spec: dict[str, Any], service_id: str | None = None) -> str:
        service_id = service_id or new_service_id()
        proto = analytics.spec_from_dict(spec)  # documents carry proto JSON specs
        self.collection.insert_one(
            analytics.local_document(
                service_id=service_id,
                namespace="default",
                spec=proto,
                created_at=dt.datetime.now(dt.UTC),
            )
        )
        self.announce(service_id)
        return service_id

    def announce(self, service_id: str) -> None:
        """Append to the change journal, as the orchestrator does after each write."""
        journal = self.collection.database[changes.journal_name(self.collection.name)]
        head = journal.find_one({"_id": changes.HEAD_ID})
        seq = (int(head["seq"]) if head else 0) + 1
        while True:
            try:
                journal.insert_one({"_id": changes.entry_id(seq), "service_id": service_id})
                break
            except pymongo.errors.DuplicateKeyError:
                seq += 1
        journal.update_one({"_id": changes.HEAD_ID}, {"$max": {"seq": seq}}, upsert=True)

    def status(self, service_id: str) -> dict[str, Any]:
        doc = self.collection.find_one({"_id": service_id})
        if doc is None:
            return {}
        return dict(analytics.resource_from_local_document(doc).get("status") or {})

    def wait_status(
        self, service_id: str, predicate: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        seen: list[dict[str, Any]] = []

        def check() -> bool:
            seen[:] = [self.status(service_id)]
            return predicate(seen[0])

        waiting.wait_for(
            check,
            timeout=WAIT,
            what=f"{service_id}: {what}",
            details=lambda: (
                f"last status: {seen[-1] if seen else None}\n" + self.process.process.log_tail(30)
            ),
        )
        return seen[-1]

    def terminate(self, service_id: str) -> None:
        self.collection.update_one(
            {"_id": service_id},
            {
                "$set": {
                    analytics.LOCAL_DELETION_TIMESTAMP: analytics.format_time(
                        dt.datetime.now(dt.UTC)
                    )
                }
            },
        )
        self.announce(service_id)

    def spec(self, **extra: Any) -> dict[str, Any]:
        env = {"CONTROL_DIR": str(self.control), **extra.pop("env", {})}
        return {
            "image": "ghcr.io/example/sim",
            "jobType": "ondemand",
            "reps": 3,
            "command": [sys.executable, "-c", PROGRAM],
            "env": env,
            **extra,
        }


@pytest.fixture
def local_operator_factory(
    mongodb_uri: str,
    files_server: FilesServer,
    operator_process: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> Iterator[Callable[..., LocalOperator]]:

    database = unique_db_name("op")
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongodb_uri, tz_aware=True)
    channel = credentials().channel(files_server.address)
    control = tmp_path / "control"
    control.mkdir()

    def start(**env: str) -> LocalOperator:
        output_root = tmp_path / "outputs"
        process = operator_process(
            runtime="local",
            files_address=files_server.address,
            output_root=output_root,
            mongodb_uri=mongodb_uri,
            local_database=database,
            env={
                "DTPOC_OPERATOR_LOCAL_POLL_SECONDS": "0.3",
                "DTPOC_OPERATOR_TERMINATE_GRACE_SECONDS": "3",
                **env,
            },
        )
        helper = KubeOperator(
            kube=None,  # type: ignore[arg-type]
            namespace="",
            output_root=output_root,
            process=process,
            files=files_pb2_grpc.FilesServiceStub(channel),
        )
        return LocalOperator(
            collection=client[database]["analytics"],
            process=process,
            output_root=output_root,
            control=control,
            files=helper,
        )

    yield start
    for pid_file in [*control.glob("pid-*"), *control.glob("grandchild-*")]:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    channel.close()
    client.drop_database(database)
    client.close()


def test_three_replicas_succeed_with_outputs_in_files(
    local_operator_factory: Callable[..., LocalOperator],
) -> None:
    op = local_operator_factory()
    input_id = op.files.upload("data.csv", b"a,b\n1,2\n")
    service_id = op.launch(
        op.spec(
            parallelism=2,
            inputFiles={input_id: "data.csv"},
            env={"SEED": "7", "INPUT_EXCEL_FILE": "/input/data.csv"},
        )
    )
    status = op.wait_status(service_id, lambda s: s.get("phase") == "succeeded", "succeeded")
    assert (status["succeeded"], status["failed"], status["total"]) == (3, 0, 3)
    stored = op.files.outputs(service_id)
    assert len(stored) == 3
    for index in range(3):
        replica = next(r for r in status["replicas"] if r.get("index", 0) == index)
        assert replica["state"] == "succeeded" and replica["exitCode"] == 0
        assert replica["podName"] == f"{service_id}-{index}"
        (file_id,) = replica["outputFileIds"]
        result = json.loads(op.files.content(file_id))
        assert result["replica"] == index
        assert result["run_id"] == f"{service_id}-{index}"
        assert result["input"] == "a,b\n1,2\n"  # fetched from Files by the same code
        assert result["seed"] == "7"
        assert result["excel"].endswith("/input/data.csv")
        assert result["excel"] != "/input/data.csv"  # /input rewritten to the local folder
        record = next(f for f in stored if f["file_id"] == file_id)
        assert record["metadata"]["replica_index"] == index
        assert record["metadata"]["path"] == "result.json"
    waiting.wait_for(
        lambda: not any((op.output_root / service_id).rglob("*.json")),
        timeout=10,
        what="local copies removed after collection",
    )


def test_replica_killed_by_sigkill_fails_with_its_signal(
    local_operator_factory: Callable[..., LocalOperator],
) -> None:
    op = local_operator_factory()
    service_id = op.launch(op.spec(reps=2, env={"WAIT_FOR_GO": "1"}))
    for index in range(2):
        waiting.wait_for(
            lambda i=index: (op.control / f"pid-{i}").exists(), timeout=WAIT, what="replica up"
        )
    os.kill(int((op.control / "pid-1").read_text()), signal.SIGKILL)
    (op.control / "go-0").touch()
    status = op.wait_status(service_id, lambda s: s.get("phase") == "failed", "failed")
    killed = next(r for r in status["replicas"] if r.get("index") == 1)
    assert (killed["state"], killed["exitCode"], killed["reason"]) == ("failed", 137, "Killed")
    assert "SIGKILL" in killed["message"]
    ok = next(r for r in status["replicas"] if r.get("index", 0) == 0)
    assert ok["state"] == "succeeded"


def test_exit_code_is_reported(local_operator_factory: Callable[..., LocalOperator]) -> None:
    op = local_operator_factory()
    service_id = op.launch(op.spec(reps=1, env={"EXIT_CODE": "3"}))
    status = op.wait_status(service_id, lambda s: s.get("phase") == "failed", "failed")
    (replica,) = status["replicas"]
    assert (replica["exitCode"], replica["reason"]) == (3, "Error")
    # A failed replica's outputs are collected too.
    assert replica["outputsCollected"] and len(replica["outputFileIds"]) == 1


def test_terminate_kills_the_process_group_and_removes_the_document(
    local_operator_factory: Callable[..., LocalOperator],
) -> None:
    op = local_operator_factory()
    service_id = op.launch(op.spec(reps=1, env={"WAIT_FOR_GO": "1", "SPAWN_GRANDCHILD": "1"}))
    waiting.wait_for(
        lambda: (op.control / "grandchild-0").exists(), timeout=WAIT, what="replica and grandchild"
    )
    pids = [int((op.control / name).read_text()) for name in ("pid-0", "grandchild-0")]
    op.wait_status(service_id, lambda s: s.get("active") == 1, "running")
    op.terminate(service_id)
    waiting.wait_for(
        lambda: op.collection.find_one({"_id": service_id}) is None,
        timeout=WAIT,
        what="the document removed after the processes were stopped",
        details=lambda: op.process.process.log_tail(20),
    )
    for pid in pids:
        waiting.wait_for(lambda p=pid: not _alive(p), timeout=10, what=f"process {pid} gone")
    assert [pid for pid in pids if _alive(pid)] == [], "replica and grandchild both stopped"
    assert op.collection.find_one({"_id": service_id}) is None, "the service is gone"
    assert (op.control / "runs.log").read_text().split() == ["0"], "terminated, not restarted"


def test_restart_adopts_running_replicas_and_collects_finished_outputs(
    local_operator_factory: Callable[..., LocalOperator],
) -> None:
    """SIGKILL of the operator does not take the replicas along: the next operator finds
    them by their lock files, and collects their outputs once they finish; none re-runs."""
    op = local_operator_factory()
    service_id = op.launch(op.spec(reps=2, env={"WAIT_FOR_GO": "1"}))
    op.wait_status(service_id, lambda s: s.get("active") == 2, "2 running")
    op.process.kill()
    (op.control / "go-0").touch()
    waiting.wait_for(
        lambda: any((op.output_root / service_id / "0").rglob("result.json")),
        timeout=WAIT,
        what="replica 0 finished while no operator ran",
    )
    restarted = op.process.restart()
    op.process = restarted
    status = op.wait_status(
        service_id, lambda s: (s.get("succeeded"), s.get("active")) == (1, 1), "1 done, 1 running"
    )
    assert next(r for r in status["replicas"] if r.get("index", 0) == 0)["outputsCollected"]
    (op.control / "go-1").touch()
    status = op.wait_status(service_id, lambda s: s.get("phase") == "succeeded", "succeeded")
    assert len(op.files.outputs(service_id)) == 2
    runs = (op.control / "runs.log").read_text().split()
    assert sorted(runs) == ["0", "1"], "no replica ran twice"


def test_persistent_process_is_restarted_on_exit(
    local_operator_factory: Callable[..., LocalOperator],
) -> None:
    op = local_operator_factory()
    service_id = op.launch(
        {
            "image": "ghcr.io/example/server",
            "jobType": "persistent",
            "command": [sys.executable, "-c", PROGRAM],
            "env": {"CONTROL_DIR": str(op.control), "WAIT_FOR_GO": "1"},
        }
    )
    op.wait_status(service_id, lambda s: s.get("phase") == "running", "running")
    first = int(
        waiting.wait_for(
            lambda: (op.control / "pid-0").exists() and (op.control / "pid-0").read_text(),
            timeout=WAIT,
            what="first process",
        )
    )
    os.kill(first, signal.SIGKILL)
    waiting.wait_for(
        lambda: (op.control / "pid-0").read_text() != str(first),
        timeout=WAIT,
        what="a new process started after the exit",
    )
    op.wait_status(service_id, lambda s: s.get("phase") == "running", "running again")
    assert (op.control / "runs.log").read_text().split() == ["0", "0"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
