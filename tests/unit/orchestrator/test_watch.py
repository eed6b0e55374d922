"""WatchService's endings on the fakes: a final phase, a terminate, a vanished resource,
an unknown id. The stream's own behaviour over a real server (every change arrives, a
client that goes away) stays in ``tests/orchestrator/test_watch.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_common import errors
from tests.orchestrator.messages import status_dict
from tests.unit.orchestrator.helpers import Api

STEP_TIMEOUT = 5.0


class Watcher:
    """Reads the servicer's WatchService stream on a task, as a client would."""

    def __init__(self, api: Api, service_id: str) -> None:
        request = orchestrator_pb2.WatchServiceRequest(id=service_id)
        self._stream = api.edge.WatchService(request, None)
        self.updates: list[orchestrator_pb2.ServiceStatus] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._stream:
            self.updates.append(message.status)

    def phases(self) -> list[str]:
        return [u.phase for u in self.updates]

    async def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        async def poll() -> None:
            while not condition():
                if self.task.done():
                    self.task.result()
                    raise AssertionError(f"the stream ended before {what}: {self.phases()}")
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), timeout=STEP_TIMEOUT)

    async def wait_end(self) -> None:
        await asyncio.wait_for(self.task, timeout=STEP_TIMEOUT)


async def test_watch_ends_when_the_service_fails(api: Api) -> None:
    service_id = await api.launch()
    watcher = Watcher(api, service_id)
    await watcher.wait_for(lambda: "pending" in watcher.phases(), "phase pending")
    api.store.write_status(service_id, status_dict(phase="failed", failed=1, total=2))
    await watcher.wait_end()
    assert watcher.phases() == ["pending", "failed"]
    assert watcher.updates[-1].status == "error"


async def test_watch_ends_when_the_service_is_terminated(api: Api) -> None:
    service_id = await api.launch(ana={"job_type": "persistent"})
    watcher = Watcher(api, service_id)
    await watcher.wait_for(lambda: "pending" in watcher.phases(), "phase pending")
    await api.edge.TerminateService(orchestrator_pb2.TerminateServiceRequest(id=service_id), None)
    await watcher.wait_end()
    assert watcher.phases()[-1] == "terminated"


async def test_watch_of_a_terminated_service_answers_once(api: Api) -> None:
    service_id = await api.launch()
    await api.edge.TerminateService(orchestrator_pb2.TerminateServiceRequest(id=service_id), None)
    watcher = Watcher(api, service_id)
    await watcher.wait_end()
    assert watcher.phases() == ["terminated"]


async def test_watch_ends_when_the_resource_vanishes(api: Api) -> None:
    service_id = await api.launch()
    watcher = Watcher(api, service_id)
    await watcher.wait_for(lambda: "pending" in watcher.phases(), "phase pending")
    api.store.delete_behind_our_back(service_id)
    await watcher.wait_end()
    assert watcher.phases() == ["pending", "failed"]
    assert watcher.updates[-1].message.startswith("workload resource missing")


async def test_watch_unknown_is_not_found(api: Api) -> None:
    watcher = Watcher(api, "0" * 24)
    with pytest.raises(errors.NotFound):
        await watcher.wait_end()
