"""Who mounts a file: asks the orchestrator before a file is deleted.

The orchestrator owns the service records, so it alone knows which services
mount a file as input. Deleting a file a live service still needs would
break the service's next run; the Files service therefore asks the
orchestrator's ``GetFileUsage`` before every delete without ``force``. When
it cannot ask (no address configured, orchestrator down), it refuses rather
than guesses, unless the check was switched off explicitly.
"""

from __future__ import annotations

from typing import Protocol

import grpc

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2, orchestrator_pb2_grpc
from dtpoc_common import errors, grpcauth, grpcclient
from dtpoc_common import logging as dlog
from dtpoc_files.settings import FilesSettings

log = dlog.get_logger(__name__)


class FileUsage(Protocol):
    """Port: which services that are not terminated mount a file."""

    async def active_service_ids(self, file_id: str) -> list[str]: ...

    async def close(self) -> None: ...


class OrchestratorFileUsage:
    """Asks the orchestrator's gRPC API."""

    def __init__(self, address: str, *, timeout_seconds: float, token: str | None = None) -> None:
        self._address = address
        self._timeout = timeout_seconds
        self._channel = grpcclient.open_channel(address, token=token)
        self._stub = orchestrator_pb2_grpc.OrchestratorServiceStub(self._channel)

    async def active_service_ids(self, file_id: str) -> list[str]:
        request = orchestrator_pb2.GetFileUsageRequest(file_id=file_id)
        try:
            response = await self._stub.GetFileUsage(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                # No service record mentions the file: nobody mounts it.
                return []
            log.warning(
                "file usage check failed",
                file_id=file_id,
                orchestrator=self._address,
                code=exc.code().name,
            )
            raise errors.Unavailable(
                f"the orchestrator at {self._address} could not say whether a service mounts "
                f"this file ({exc.code().name}); nothing was deleted. Retry later, or delete "
                "with force"
            ) from exc
        return list(response.active_service_ids)

    async def close(self) -> None:
        await self._channel.close()


class UnconfiguredFileUsage:
    """No orchestrator address and the check not switched off: refuse."""

    async def active_service_ids(self, file_id: str) -> list[str]:
        raise errors.FailedPrecondition(
            "cannot tell whether a running service mounts this file: the orchestrator's "
            "address (DTPOC_FILES_ORCHESTRATOR_ADDRESS) is not configured; nothing was "
            "deleted. Delete with force, or configure the address"
        )

    async def close(self) -> None:
        return None


class NoUsageCheck:
    """The check is switched off (``DTPOC_FILES_USAGE_CHECK=false``): nobody mounts anything."""

    async def active_service_ids(self, file_id: str) -> list[str]:
        return []

    async def close(self) -> None:
        return None


def from_settings(settings: FilesSettings) -> FileUsage:
    """The usage check the settings ask for."""
    if not settings.usage_check:
        return NoUsageCheck()
    if not settings.orchestrator_address:
        return UnconfiguredFileUsage()
    return OrchestratorFileUsage(
        settings.orchestrator_address,
        timeout_seconds=settings.orchestrator_timeout_seconds,
        token=grpcauth.own_token(settings.grpc_token_file),
    )
