"""A test double of the orchestrator's ``GetFileUsage`` RPC.

The Files service asks the orchestrator, over gRPC, whether a service that is
not terminated mounts a file before deleting it. The real orchestrator needs
its own database and the Kubernetes stack; these tests are about the Files
service's side of the contract (``orchestrator.proto``), so this double is
a real gRPC server on a loopback port that answers ``GetFileUsage`` from a
table the test fills in. Every other method answers UNIMPLEMENTED.
"""

from __future__ import annotations

from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2, orchestrator_pb2_grpc


@dataclass
class Usage:
    active: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)


class OrchestratorUsageDouble(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    """Test double: answers ``GetFileUsage`` from :attr:`usage`; records the questions."""

    def __init__(self) -> None:
        self.usage: dict[str, Usage] = {}
        #: When set, every question fails with this code (e.g. NOT_FOUND, INTERNAL).
        self.fail_with: grpc.StatusCode | None = None
        self.asked: list[str] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(self, self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{port}"

    def GetFileUsage(  # noqa: N802 - gRPC method name
        self, request: orchestrator_pb2.GetFileUsageRequest, context: Any
    ) -> orchestrator_pb2.GetFileUsageResponse:
        self.asked.append(request.file_id)
        if self.fail_with is not None:
            context.abort(self.fail_with, "the double was told to fail")
        usage = self.usage.get(request.file_id, Usage())
        return orchestrator_pb2.GetFileUsageResponse(
            active_service_ids=usage.active, terminated_service_ids=usage.terminated
        )

    def start(self) -> OrchestratorUsageDouble:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)
