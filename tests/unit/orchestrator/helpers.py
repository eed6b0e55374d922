"""The orchestrator's use cases on its in-memory fakes, for the unit tier."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_orchestrator import service, servicer
from dtpoc_orchestrator.adapters import memory
from tests.orchestrator.messages import launch_request

#: The grace a ``creating`` record has before the settler may remove it (seconds).
GRACE_SECONDS = 60.0


@dataclass
class Clock:
    """A clock the test moves: the settler's grace period without waiting."""

    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Rig:
    """An :class:`~dtpoc_orchestrator.service.Orchestrator` and the fakes it calls."""

    records: memory.InMemoryServiceRecords = field(default_factory=memory.InMemoryServiceRecords)
    store: memory.InMemoryAnalyticsStore = field(default_factory=memory.InMemoryAnalyticsStore)
    files: memory.InMemoryFiles = field(default_factory=memory.InMemoryFiles)
    clock: Clock = field(default_factory=Clock)

    def orchestrator(
        self, *, local_containers: bool = False, expose_services: bool = False
    ) -> service.Orchestrator:
        async def ping() -> None:
            return None

        return service.Orchestrator(
            records=self.records,
            analytics_store=self.store,
            files=self.files,
            ping_database=ping,
            creating_grace_seconds=GRACE_SECONDS,
            max_inline_output_bytes=4096,
            clock=self.clock,
            local_containers=local_containers,
            expose_services=expose_services,
        )


class Api:
    """The gRPC servicer over a rig, called in-process: the messages a client sees,
    without a server (the interceptor's mapping of errors is not in it)."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.store = rig.store
        self.edge = servicer.OrchestratorServicer(rig.orchestrator())

    async def launch(self, **fields: Any) -> str:
        """Launch with the defaults of :func:`launch_request`; one clock second each."""
        self.rig.clock.advance(1)
        answer = await self.edge.LaunchService(launch_request(**fields), None)
        return str(answer.id)

    async def status(self, service_id: str) -> orchestrator_pb2.ServiceStatus:
        request = orchestrator_pb2.GetServiceStatusRequest(id=service_id)
        return (await self.edge.GetServiceStatus(request, None)).status
