"""The file usage port (:class:`dtpoc_files.ports.FileUsage`): the same tests for the
gRPC adapter (``OrchestratorFileUsage``, against a gRPC server answering
``GetFileUsage`` as the orchestrator does: ``orchestrator_double.py``) and its
in-memory fake (``InMemoryFileUsage``). What the orchestrator itself answers is
``tests/orchestrator``'s (``test_delete_during_launch.py``, the unit tier's file usage)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import pytest

from dtpoc_files import memory, ports, usage
from tests.files.orchestrator_double import OrchestratorUsageDouble, Usage

pytestmark = pytest.mark.asyncio(loop_scope="session")

FILE = "0123456789abcdef01234567"


@dataclass
class Rig:
    port: ports.FileUsage
    #: Say which services that are not terminated mount the file (and which are).
    mounts: Callable[[str, list[str], list[str]], None]


@pytest.fixture(params=["grpc", "memory"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    if request.param == "memory":
        fake = memory.InMemoryFileUsage()

        def fake_mounts(file_id: str, active: list[str], terminated: list[str]) -> None:
            fake.mounts[file_id] = active

        yield Rig(port=fake, mounts=fake_mounts)
        return
    double = OrchestratorUsageDouble().start()  # type: ignore[abstract]
    adapter = usage.OrchestratorFileUsage(double.address, timeout_seconds=5)

    def double_mounts(file_id: str, active: list[str], terminated: list[str]) -> None:
        double.usage[file_id] = Usage(active=active, terminated=terminated)

    try:
        yield Rig(port=adapter, mounts=double_mounts)
    finally:
        await adapter.close()
        double.stop()


async def test_only_services_that_are_not_terminated_hold_a_file(rig: Rig) -> None:
    rig.mounts(FILE, ["svc-b", "svc-a"], ["svc-old"])
    assert sorted(await rig.port.active_service_ids(FILE)) == ["svc-a", "svc-b"]


async def test_a_file_no_service_mounts_has_no_users(rig: Rig) -> None:
    rig.mounts(FILE, [], ["svc-old"])
    assert await rig.port.active_service_ids(FILE) == []
    assert await rig.port.active_service_ids("0" * 24) == []


async def test_the_adapter_reads_not_found_as_nobody() -> None:
    double = OrchestratorUsageDouble().start()  # type: ignore[abstract]
    double.fail_with = grpc.StatusCode.NOT_FOUND
    adapter = usage.OrchestratorFileUsage(double.address, timeout_seconds=5)
    try:
        assert await adapter.active_service_ids(FILE) == []
    finally:
        await adapter.close()
        double.stop()
