"""The orchestrator's use cases on its in-memory fakes, for the unit tier."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_common import errors
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


class RefusedCall(grpc.RpcError):
    """A domain error as a gRPC caller sees it: the interceptor's code and message."""

    def __init__(self, error: errors.DomainError) -> None:
        super().__init__(errors.describe(error))
        self.error = error

    def code(self) -> grpc.StatusCode:
        return self.error.code

    def details(self) -> str:
        return errors.describe(self.error)


class InProcessStub:
    """The servicer's unary methods as a blocking stub, on a loop of its own: tests written
    against a real server's stub run unchanged on the fakes."""

    def __init__(
        self, edge: servicer.OrchestratorServicer, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._edge = edge
        self._loop = loop

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._edge, name)

        def call(request: Any, timeout: float | None = None) -> Any:
            try:
                return self._loop.run_until_complete(method(request, None))
            except errors.DomainError as exc:
                raise RefusedCall(exc) from exc

        return call


class InProcessPlatform:
    """The part of ``tests.orchestrator.helpers.Platform`` a use-case test needs, on the
    fakes: ``stub()``, ``launch``, ``upload``/``upload_output`` (into the Files fake) and
    ``operator`` (the store fake's operator part)."""

    backend = "local"

    def __init__(self) -> None:
        self.rig = Rig()
        self.operator = self.rig.store
        self._loop = asyncio.new_event_loop()
        self._stub = InProcessStub(
            servicer.OrchestratorServicer(self.rig.orchestrator()), self._loop
        )

    def stub(self, *, as_: str | None = None) -> Any:
        return self._stub

    def launch(self, **fields: Any) -> str:
        self.rig.clock.advance(1)
        return str(self._stub.LaunchService(launch_request(**fields)).id)

    def upload(self, filename: str, data: bytes, *, metadata: dict[str, Any] | None = None) -> str:
        return self.rig.files.add(filename, data, metadata=metadata)

    def upload_output(self, service_id: str, replica_index: int, path: str, data: bytes) -> str:
        labels = {"service_id": service_id, "replica_index": replica_index, "path": path}
        return self.upload(path.rsplit("/", 1)[-1], data, metadata=labels)

    def close(self) -> None:
        self._loop.close()
