"""Test doubles: small real gRPC servers the gateway tests talk to.

``OrchestratorDouble`` implements the generated ``OrchestratorServiceServicer``
with an in-memory dict. It stands in for the Orchestrator in tests of the
gateway's generic behaviour (JSON mapping, status codes, SSE) where a real
orchestrator would need MongoDB and an operator to show the same thing.
The Files REST paths are tested against the real Files service instead.

Scripted behaviour, documented so tests can rely on it:

* ``GetServiceStatus`` / ``GetService`` with an id ``abort-<CODE>`` (a gRPC
  code name such as ``NOT_FOUND``) aborts with that code and the message
  ``double says <CODE>``; any other unknown id answers NOT_FOUND.
* ``WatchService`` sends the statuses in ``watch_script`` (one per
  ``watch_gap`` seconds), then ends; with ``abort-<CODE>`` it fails at once;
  with :attr:`OrchestratorDouble.fail_after` set it fails after the first
  message; a caller that goes away is recorded as ``WatchService cancelled``.
* ``GetServiceStatus`` for an id in ``slow_ids`` answers after ``slow_seconds``, or
  when the caller's deadline passes, whichever comes first.
* Every request received is appended to ``received`` (method name, message).

``serve(servicer, add_to_server)`` runs a servicer on a free loopback port
in a thread pool and returns ``(server, address)``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import struct_pb2

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2 as pb
from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2_grpc as pb_grpc

#: A 64-bit value larger than 32 bits, exactly representable as a double.
BIG_LENGTH = 5_000_000_000
#: 2^53 + 1: not representable as a double, so proto JSON keeps it quoted.
UNSAFE_LENGTH = 2**53 + 1


def serve(
    servicer: Any, add_to_server: Callable[[Any, grpc.Server], None]
) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    add_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@contextlib.contextmanager
def serving_orchestrator_double() -> Iterator[tuple[OrchestratorDouble, str]]:
    """An :class:`OrchestratorDouble` served on a loopback port, and its address."""
    double = OrchestratorDouble()
    server, address = serve(double, pb_grpc.add_OrchestratorServiceServicer_to_server)
    try:
        yield double, address
    finally:
        server.stop(grace=None)


def _abort_code(service_id: str) -> grpc.StatusCode | None:
    if not service_id.startswith("abort-"):
        return None
    return grpc.StatusCode[service_id.removeprefix("abort-")]


class OrchestratorDouble(pb_grpc.OrchestratorServiceServicer):
    """In-memory orchestrator (module docstring)."""

    def __init__(self) -> None:
        self.services: dict[str, pb.Service] = {}
        self.received: list[tuple[str, Any]] = []
        #: Invocation metadata of each GetServiceStatus call.
        self.metadata: list[dict[str, Any]] = []
        self.watch_script: list[pb.ServiceStatus] = [
            pb.ServiceStatus(status="running", phase="running", active_runs=2, total_runs=2),
            pb.ServiceStatus(
                status="running", phase="running", active_runs=1, total_runs=2, succeeded_runs=1
            ),
            pb.ServiceStatus(status="ok", phase="succeeded", succeeded_runs=2, total_runs=2),
        ]
        self.watch_gap = 0.05
        #: Ids whose GetServiceStatus takes ``slow_seconds`` (or until the caller gives up).
        self.slow_ids: set[str] = set()
        self.slow_seconds = 5.0
        #: When set, WatchService fails with this code after the first message.
        self.fail_after: grpc.StatusCode | None = None
        self._lock = threading.Lock()
        self._next = 0

    # The calls no gateway test makes answer UNIMPLEMENTED, as the generated base does;
    # named here because the typed stubs declare every call abstract.
    _base = pb_grpc.OrchestratorServiceServicer
    GetReplicaLog = _base.GetReplicaLog
    GetVersion = _base.GetVersion
    ResubmitService = _base.ResubmitService
    ResumeService = _base.ResumeService
    RetryService = _base.RetryService
    SuspendService = _base.SuspendService

    @contextlib.contextmanager
    def watch_settings_restored(self) -> Iterator[None]:
        """A module shares the double: what a test sets of the watch script is undone."""
        gap, fail_after = self.watch_gap, self.fail_after
        try:
            yield
        finally:
            self.watch_gap, self.fail_after = gap, fail_after

    def add_service(self, **fields: Any) -> pb.Service:
        with self._lock:
            self._next += 1
            service_id = f"{self._next:024x}"
        service = pb.Service(id=service_id, **fields)
        self.services[service_id] = service
        return service

    def _record(self, name: str, request: Any) -> None:
        with self._lock:
            self.received.append((name, request))

    def _find(self, service_id: str, context: grpc.ServicerContext) -> pb.Service:
        code = _abort_code(service_id)
        if code is not None:
            context.abort(code, f"double says {code.name}")
        found = self.services.get(service_id)
        if found is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"service {service_id} not found")
        return found

    def Healthz(  # noqa: N802 - gRPC method name
        self, request: pb.HealthzRequest, context: grpc.ServicerContext
    ) -> pb.HealthzResponse:
        return pb.HealthzResponse(status="ok")

    def ListServices(  # noqa: N802 - gRPC method name
        self, request: pb.ListServicesRequest, context: grpc.ServicerContext
    ) -> pb.ListServicesResponse:
        self._record("ListServices", request)
        if request.skip < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "skip: must be >= 0")
        limit = request.limit or 10
        items = list(self.services.values())[request.skip : request.skip + limit]
        return pb.ListServicesResponse(services=items)

    def LaunchService(  # noqa: N802 - gRPC method name
        self, request: pb.LaunchServiceRequest, context: grpc.ServicerContext
    ) -> pb.LaunchServiceResponse:
        self._record("LaunchService", request)
        if not request.image:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "image: required")
        service = self.add_service(
            image=request.image,
            version=request.version or "latest",
            description=request.description,
            reps=request.ana.reps,
            mount_files=dict(request.mount_files),
            env=dict(request.env),
            status="running",
            phase="pending",
            total_runs=request.ana.reps,
            created_at=1_700_000_000.5,
        )
        return pb.LaunchServiceResponse(id=service.id)

    def GetService(  # noqa: N802 - gRPC method name
        self, request: pb.GetServiceRequest, context: grpc.ServicerContext
    ) -> pb.GetServiceResponse:
        return pb.GetServiceResponse(service=self._find(request.id, context))

    def GetServiceStatus(  # noqa: N802 - gRPC method name
        self, request: pb.GetServiceStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetServiceStatusResponse:
        self._record("GetServiceStatus", request)
        with self._lock:
            self.metadata.append(dict(context.invocation_metadata()))
        if request.id in self.slow_ids:
            deadline = time.monotonic() + self.slow_seconds
            while context.is_active() and time.monotonic() < deadline:
                time.sleep(0.01)
        service = self._find(request.id, context)
        return pb.GetServiceStatusResponse(
            status=pb.ServiceStatus(
                active_runs=service.active_runs,
                succeeded_runs=service.succeeded_runs,
                failed_runs=service.failed_runs,
                total_runs=service.total_runs,
                status=service.status,
                phase=service.phase,
                output_files=list(service.output_files),
                replicas=[analytics_pb2.ReplicaStatus(index=0, state="pending")],
            )
        )

    def GetServiceOutput(  # noqa: N802 - gRPC method name
        self, request: pb.GetServiceOutputRequest, context: grpc.ServicerContext
    ) -> pb.GetServiceOutputResponse:
        self._record("GetServiceOutput", request)
        service = self._find(request.id, context)
        if request.idx >= max(service.reps, 1):
            context.abort(grpc.StatusCode.OUT_OF_RANGE, f"idx: must be < {service.reps}")
        value = struct_pb2.Value()
        value.struct_value.update({"replica": request.idx, "kpi": {"tat_hours": 12.5}})
        return pb.GetServiceOutputResponse(output=value, idx=request.idx)

    def ListServiceOutputs(  # noqa: N802 - gRPC method name
        self, request: pb.ListServiceOutputsRequest, context: grpc.ServicerContext
    ) -> pb.ListServiceOutputsResponse:
        self._find(request.id, context)
        files = [
            pb.OutputFile(file_id="a" * 24, path="out.json", length=BIG_LENGTH),
            pb.OutputFile(file_id="b" * 24, path="huge.bin", length=UNSAFE_LENGTH),
            pb.OutputFile(file_id="c" * 24, path="empty.txt", length=0),
        ]
        return pb.ListServiceOutputsResponse(
            replicas=[pb.ReplicaOutputs(idx=0, state="succeeded", files=files)]
        )

    def TerminateService(  # noqa: N802 - gRPC method name
        self, request: pb.TerminateServiceRequest, context: grpc.ServicerContext
    ) -> pb.TerminateServiceResponse:
        service = self._find(request.id, context)
        service.phase = "terminated"
        return pb.TerminateServiceResponse(
            message=f"service {service.id} terminated", service=service
        )

    def WatchService(  # noqa: N802 - gRPC method name
        self, request: pb.WatchServiceRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchServiceResponse]:
        self._find(request.id, context)
        finished = threading.Event()

        def ended() -> None:  # called by gRPC when the call ends, however it ends
            if not finished.is_set():
                self._record("WatchService cancelled", request)

        context.add_callback(ended)
        for index, status in enumerate(self.watch_script):
            if index:
                deadline = time.monotonic() + self.watch_gap
                while context.is_active() and time.monotonic() < deadline:
                    time.sleep(0.01)
                if not context.is_active():
                    return
            yield pb.WatchServiceResponse(status=status)
            if self.fail_after is not None:
                finished.set()
                context.abort(self.fail_after, f"double says {self.fail_after.name}")
        finished.set()

    def GetFileUsage(  # noqa: N802 - gRPC method name
        self, request: pb.GetFileUsageRequest, context: grpc.ServicerContext
    ) -> pb.GetFileUsageResponse:
        return pb.GetFileUsageResponse()
