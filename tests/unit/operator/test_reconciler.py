"""The reconciler's rules on the in-memory fakes of its ports (:mod:`dtpoc_operator.memory`).

What a user of a service sees: the status (phase, replicas, their outputs and
logs in Files), whether a workload ran (once), and whether a deletion went
through. The fakes pass the same contract tests as the real adapters
(``tests/operator/test_store_contract.py``, ``test_runtime_contract.py``,
``test_files_contract.py``); the real runtimes end to end stay in tests/operator.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from dtpoc_common.vocabulary import Phase, ReplicaState
from dtpoc_operator import collector, logstore, memory, ports, reconciler, status
from dtpoc_operator.model import AnalyticsResource, ServiceKey, Status

SID = "0123456789abcdef01234567"
START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Rig:
    store: memory.InMemoryAnalyticsStore
    runtime: memory.InMemoryRuntime
    files: memory.InMemoryFiles
    clock: Clock
    reconciler: reconciler.Reconciler

    @property
    def key(self) -> ServiceKey:
        return self.store.key(SID)

    def resource(self) -> AnalyticsResource:
        return self.store.resources[self.key]

    def status(self) -> Status:
        return self.resource().status

    async def reconcile(self) -> float | None:
        return await self.reconciler.reconcile(self.key)

    def content(self, file_id: str) -> bytes:
        return self.files.files[file_id].content


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    clock = Clock()
    store = memory.InMemoryAnalyticsStore(clock=clock)
    runtime = memory.InMemoryRuntime(output_root=tmp_path)
    files = memory.InMemoryFiles()
    return Rig(
        store=store,
        runtime=runtime,
        files=files,
        clock=clock,
        reconciler=reconciler.Reconciler(
            store=store,
            runtime=runtime,
            collector=collector.OutputCollector(files, max_parallel_uploads=2, timeout_seconds=5),
            options=reconciler.ReconcilerOptions(terminate_grace_seconds=30),
            clock=clock,
            log_store=logstore.LogStore(files, timeout_seconds=5),
        ),
    )


def launch(rig: Rig, **spec: Any) -> None:
    rig.store.create(
        SID, {"image": "img", "jobType": "ondemand", "reps": 2, "command": ["run"], **spec}
    )


def states(status_: Status) -> list[str]:
    return [r.state for r in status_.replicas]


def unavailable() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down"
    )


async def test_a_launch_holds_deletion_and_shows_pending_replicas_in_one_write(rig: Rig) -> None:
    launch(rig)
    await rig.reconcile()
    assert memory.FINALIZER in rig.resource().finalizers
    assert rig.status().phase == Phase.PENDING
    assert states(rig.status()) == [ReplicaState.PENDING, ReplicaState.PENDING]
    assert len(rig.store.status_writes) == 1
    assert rig.runtime.created == [SID]


async def test_reconciling_an_unchanged_service_writes_nothing_and_creates_no_twin(
    rig: Rig,
) -> None:
    launch(rig)
    for _ in range(3):
        await rig.reconcile()
    assert rig.runtime.created == [SID]
    assert len(rig.store.status_writes) == 1


async def test_succeeded_only_with_every_output_and_log_in_files_then_copies_go(
    rig: Rig,
) -> None:
    launch(rig)
    await rig.reconcile()
    rig.runtime.finish(rig.resource(), 0, outputs={"a.txt": b"zero"}, log=b"log zero\n")
    await rig.reconcile()
    assert rig.status().phase == Phase.RUNNING, "one replica still to go"
    first = rig.status().replicas[0]
    assert [rig.content(i) for i in first.output_file_ids] == [b"zero"]
    rig.runtime.finish(
        rig.resource(), 1, outputs={"b/c.txt": b"one", "a.txt": b"uno"}, log=b"log one\n"
    )
    await rig.reconcile()
    done = rig.status()
    assert done.phase == Phase.SUCCEEDED
    assert done.condition("OutputsCollected").status == "True"  # type: ignore[union-attr]
    second = done.replicas[1]
    assert [rig.content(i) for i in second.output_file_ids] == [b"uno", b"one"]  # relpath order
    assert [(g.attempt, rig.content(g.file_id)) for g in second.logs] == [(1, b"log one\n")]
    metadata = dict(rig.files.uploads[-1][1])
    assert metadata["service_id"] == SID
    assert not any((rig.runtime.output_root / SID).rglob("*.txt")), "local copies removed"


async def test_a_crash_between_upload_and_status_write_loses_and_doubles_nothing(
    rig: Rig,
) -> None:
    launch(rig, reps=1)
    await rig.reconcile()
    rig.runtime.finish(rig.resource(), 0, outputs={"a.txt": b"A", "b.txt": b"B"})
    rig.store.faults.arm("write_status", ports.AdapterError("apiserver gone"))
    with pytest.raises(ports.AdapterError):
        await rig.reconcile()
    assert rig.status().phase == Phase.PENDING, "the status write was lost"
    folder = rig.runtime.output_folder(rig.resource(), run=SID, index=0)
    assert sorted(p.name for p in folder.rglob("*.txt")) == ["a.txt", "b.txt"], "copies kept"
    await rig.reconcile()
    done = rig.status()
    assert done.phase == Phase.SUCCEEDED
    assert [rig.content(i) for i in done.replicas[0].output_file_ids] == [b"A", b"B"]
    assert len(rig.files.files) == 2, "the re-upload answered the same ids"
    assert not any(folder.rglob("*.txt"))


async def test_files_unreachable_keeps_outputs_in_place_until_it_answers(rig: Rig) -> None:
    launch(rig, reps=1)
    await rig.reconcile()
    rig.runtime.finish(rig.resource(), 0, outputs={"a.txt": b"A"})
    rig.files.faults.arm("UploadFile", unavailable())
    with pytest.raises(collector.CollectError):
        await rig.reconcile()
    assert rig.status().phase != Phase.SUCCEEDED
    folder = rig.runtime.output_folder(rig.resource(), run=SID, index=0)
    assert [p.name for p in folder.rglob("*.txt")] == ["a.txt"]
    await rig.reconcile()
    assert rig.status().phase == Phase.SUCCEEDED
    assert [rig.content(i) for i in rig.status().replicas[0].output_file_ids] == [b"A"]


async def test_an_output_files_refuses_is_named_and_the_service_still_finishes(rig: Rig) -> None:
    launch(rig, reps=1)
    await rig.reconcile()
    rig.runtime.finish(rig.resource(), 0, outputs={"big.bin": b"x"})
    refused = grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.aio.Metadata(), grpc.aio.Metadata(), "too big"
    )
    rig.files.faults.arm("UploadFile", refused)
    await rig.reconcile()
    done = rig.status()
    assert done.phase == Phase.SUCCEEDED
    assert done.replicas[0].output_file_ids == ()
    assert "big.bin" in done.replicas[0].message and "too big" in done.replicas[0].message


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"inputFiles": {"0123456789abcdef01234567": "../etc/passwd"}}, "InvalidSpec"),
        ({"jobType": "hourly"}, "InvalidSpec"),
    ],
)
async def test_a_spec_the_runtime_refuses_fails_at_once_and_nothing_runs(
    rig: Rig, spec: dict[str, Any], reason: str
) -> None:
    launch(rig, **spec)
    await rig.reconcile()
    failed = rig.status()
    assert failed.phase == Phase.FAILED
    assert failed.condition("Failed").reason == reason  # type: ignore[union-attr]
    assert failed.message
    assert rig.runtime.created == []


async def test_a_replica_failed_for_good_fails_the_service_with_its_reason(rig: Rig) -> None:
    launch(rig)
    await rig.reconcile()
    rig.runtime.finish(rig.resource(), 0)
    rig.runtime.finish(rig.resource(), 1, exit_code=137, reason="OOMKilled")
    await rig.reconcile()
    failed = rig.status()
    assert failed.phase == Phase.FAILED
    assert "replica 1: OOMKilled, exit code 137" in failed.message
    assert (failed.succeeded, failed.failed) == (1, 1)


async def test_a_retry_reruns_only_the_failed_replica_and_its_new_outputs_replace_the_old(
    rig: Rig,
) -> None:
    launch(rig, reps=3)
    await rig.reconcile()
    for index in range(3):
        rig.runtime.finish(
            rig.resource(), index, exit_code=1 if index == 1 else 0, outputs={"r": b"%d" % index}
        )
    await rig.reconcile()
    before = {r.index: r for r in rig.status().replicas}
    assert rig.status().phase == Phase.FAILED
    rig.store.patch_spec(SID, {"replicaAttempts": {"1": 2}})
    await rig.reconcile()
    retrying = {r.index: r for r in rig.status().replicas}
    assert (retrying[1].state, retrying[1].attempt) == (ReplicaState.PENDING, 2)
    assert rig.status().phase not in (Phase.FAILED, Phase.SUCCEEDED)
    rig.runtime.finish(rig.resource(), 1, outputs={"r": b"second try"})
    await rig.reconcile()
    done = rig.status()
    assert done.phase == Phase.SUCCEEDED
    after = {r.index: r for r in done.replicas}
    assert [after[i].attempt for i in range(3)] == [1, 2, 1]
    for index in (0, 2):
        assert after[index].output_file_ids == before[index].output_file_ids
        assert after[index].pod_name == before[index].pod_name
    assert [rig.content(i) for i in after[1].output_file_ids] == [b"second try"]
    assert rig.runtime.created == [SID]
    leftover = list((rig.runtime.output_root / SID).rglob("*"))
    assert leftover == [], "the failed attempt's files went with the collected copies"


async def test_a_finished_ondemand_service_is_not_synced_again(rig: Rig) -> None:
    launch(rig, reps=1)
    await rig.reconcile()
    rig.runtime.finish(rig.resource(), 0)
    await rig.reconcile()
    assert rig.status().phase == Phase.SUCCEEDED
    synced = len(rig.runtime.synced)
    writes = len(rig.store.status_writes)
    await rig.reconcile()
    assert len(rig.runtime.synced) == synced
    assert len(rig.store.status_writes) == writes


async def test_terminate_records_finished_and_partial_outputs_then_lets_go(rig: Rig) -> None:
    launch(rig)
    await rig.reconcile()
    rig.runtime.finish(rig.resource(), 0, outputs={"done.txt": b"done"})
    rig.runtime.start(SID, 1)
    rig.runtime.write(rig.resource(), 1, {"partial.txt": b"half"})
    rig.runtime.stop_polls = 1
    rig.store.delete(SID)
    assert rig.resource().deleting, "the finalizer holds the deletion"
    assert await rig.reconcile() == reconciler.STOP_POLL_SECONDS
    assert rig.store.resources[rig.key].deleting, "still waiting for the replicas to stop"
    assert await rig.reconcile() is None
    assert rig.key not in rig.store.resources
    final = rig.store.status_writes[-1][1]
    by_index = {r.index: r for r in final.replicas}
    assert by_index[0].state == ReplicaState.SUCCEEDED
    assert [rig.content(i) for i in by_index[0].output_file_ids] == [b"done"]
    assert by_index[1].reason == status.REASON_TERMINATED
    assert [rig.content(i) for i in by_index[1].output_file_ids] == [b"half"]
    assert rig.runtime.forgotten == [SID]


async def test_terminate_goes_through_after_the_grace_even_if_the_stop_never_ends(
    rig: Rig,
) -> None:
    launch(rig, reps=1)
    await rig.reconcile()
    rig.runtime.start(SID, 0)
    rig.runtime.stop_polls = 10**6
    rig.store.delete(SID)
    assert await rig.reconcile() == reconciler.STOP_POLL_SECONDS
    rig.clock.now = START + dt.timedelta(seconds=31)
    assert await rig.reconcile() is None
    assert rig.key not in rig.store.resources
    (replica,) = rig.store.status_writes[-1][1].replicas
    assert (replica.state, replica.reason) == (ReplicaState.FAILED, status.REASON_TERMINATED)


async def test_a_vanished_workload_fails_its_unfinished_replicas(rig: Rig) -> None:
    launch(rig, reps=1)
    await rig.reconcile()
    rig.runtime.start(SID, 0)
    await rig.reconcile()
    del rig.runtime.workloads[SID]  # someone deleted the Job
    await rig.reconcile()
    (replica,) = rig.status().replicas
    assert (replica.state, replica.reason) == (
        ReplicaState.FAILED,
        status.REASON_WORKLOAD_DELETED,
    )
    assert rig.status().phase == Phase.FAILED
    assert rig.runtime.created == [SID], "a service that ran is not started again"


async def test_a_gone_resource_is_nothing_to_do(rig: Rig) -> None:
    assert await rig.reconcile() is None
    assert rig.runtime.synced == []


def hostile(folder: Path) -> None:
    """What a hostile replica leaves: a result, a FIFO, a link out of the folder, and a
    file below a path longer than PATH_MAX (made with relative steps, as a program can)."""
    (folder / "result.json").write_text('{"ok": true}')
    os.mkfifo(folder / "pipe")
    (folder / "escape").symlink_to("/etc", target_is_directory=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    for level in range(24):
        name = f"{level:03d}" + "d" * 197
        os.mkdir(name, dir_fd=fd)
        child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    deep = os.open("deep.csv", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(deep, b"deep,1\n")
    os.close(deep)
    os.close(fd)


def stored_paths(rig: Rig) -> list[str]:
    return sorted(str(m["path"]) for _id, m in rig.files.uploads if m.get("service_id") == SID)


async def test_unstorable_outputs_are_named_and_the_service_finishes(rig: Rig) -> None:
    launch(rig, reps=1)
    await rig.reconcile()
    hostile(rig.runtime.write(rig.resource(), 0, {}))
    rig.runtime.finish(rig.resource(), 0)
    await rig.reconcile()
    done = rig.status()
    assert done.phase == Phase.SUCCEEDED
    (replica,) = done.replicas
    assert replica.outputs_collected
    assert len(replica.output_file_ids) == 2, "result.json and the deep file"
    assert "pipe (a FIFO)" in replica.message
    assert "escape (a symbolic link (not followed))" in replica.message
    paths = stored_paths(rig)
    assert paths[-1] == "result.json" and paths[0].endswith("/deep.csv")
    assert len(paths[0]) > 4096


async def test_terminate_completes_whatever_the_folder_holds(rig: Rig) -> None:
    launch(rig, reps=1)
    await rig.reconcile()
    rig.runtime.start(SID, 0)
    hostile(rig.runtime.write(rig.resource(), 0, {}))
    rig.store.delete(SID)
    assert await rig.reconcile() is None
    assert rig.key not in rig.store.resources, "the deletion went through"
    paths = stored_paths(rig)
    assert "result.json" in paths and any(p.endswith("/deep.csv") for p in paths)
