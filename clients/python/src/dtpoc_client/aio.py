"""``AsyncClient``: the same methods as coroutines, for notebooks and asyncio programs.

Each call runs the synchronous client's method in a worker thread
(``asyncio.to_thread``), so the event loop (a notebook's, a web app's) stays
free while a file streams or a watch waits; ``services.watch`` is an async
iterator. One transport, one behaviour: answers and errors are exactly the
synchronous client's.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from dtpoc.files.v1alpha1 import files_pb2
from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_client.api import Files, Services
from dtpoc_client.client import Client

P = ParamSpec("P")
T = TypeVar("T")
_DONE = object()


async def _call(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


class AsyncFiles:
    """:class:`dtpoc_client.api.Files` as coroutines (same arguments)."""

    def __init__(self, files: Files) -> None:
        self._sync = files

    async def upload(self, *args: Any, **kwargs: Any) -> files_pb2.UploadFileResponse:
        return await _call(self._sync.upload, *args, **kwargs)

    async def download(self, *args: Any, **kwargs: Any) -> files_pb2.FileInfo:
        return await _call(self._sync.download, *args, **kwargs)

    async def info(self, file_id: str) -> files_pb2.FileInfo:
        return await _call(self._sync.info, file_id)

    async def list(self, **kwargs: Any) -> builtins.list[files_pb2.FileInfo]:
        return await _call(self._sync.list, **kwargs)

    async def delete(self, file_id: str, *, force: bool = False) -> files_pb2.DeleteFileResponse:
        return await _call(self._sync.delete, file_id, force=force)

    async def usage(self, file_id: str) -> orchestrator_pb2.GetFileUsageResponse:
        return await _call(self._sync.usage, file_id)


class AsyncServices:
    """:class:`dtpoc_client.api.Services` as coroutines; ``watch`` an async iterator."""

    def __init__(self, services: Services) -> None:
        self._sync = services

    async def launch(self, spec: Any) -> orchestrator_pb2.LaunchServiceResponse:
        return await _call(self._sync.launch, spec)

    async def list(self, **kwargs: Any) -> builtins.list[orchestrator_pb2.Service]:
        return await _call(self._sync.list, **kwargs)

    async def get(self, service_id: str) -> orchestrator_pb2.Service:
        return await _call(self._sync.get, service_id)

    async def status(self, service_id: str) -> orchestrator_pb2.ServiceStatus:
        return await _call(self._sync.status, service_id)

    async def watch(self, service_id: str) -> AsyncIterator[orchestrator_pb2.ServiceStatus]:
        updates = self._sync.watch(service_id)
        try:
            while (item := await asyncio.to_thread(next, updates, _DONE)) is not _DONE:
                assert isinstance(item, orchestrator_pb2.ServiceStatus)
                yield item
        finally:
            await asyncio.to_thread(updates.close)

    async def logs(self, service_id: str, idx: int, **options: Any) -> AsyncIterator[str]:
        """:meth:`Services.logs` as an async iterator (same keyword options)."""
        pieces = self._sync.logs(service_id, idx, **options)
        try:
            while (item := await asyncio.to_thread(next, pieces, _DONE)) is not _DONE:
                assert isinstance(item, str)
                yield item
        finally:
            await asyncio.to_thread(pieces.close)

    async def output(self, service_id: str, idx: int) -> orchestrator_pb2.GetServiceOutputResponse:
        return await _call(self._sync.output, service_id, idx)

    async def outputs(self, service_id: str) -> builtins.list[orchestrator_pb2.ReplicaOutputs]:
        return await _call(self._sync.outputs, service_id)

    async def terminate(self, service_id: str) -> orchestrator_pb2.TerminateServiceResponse:
        return await _call(self._sync.terminate, service_id)

    async def retry(self, service_id: str) -> orchestrator_pb2.RetryServiceResponse:
        return await _call(self._sync.retry, service_id)

    async def resubmit(self, service_id: str) -> str:
        return await _call(self._sync.resubmit, service_id)

    async def suspend(self, service_id: str) -> orchestrator_pb2.SuspendServiceResponse:
        return await _call(self._sync.suspend, service_id)

    async def resume(self, service_id: str) -> orchestrator_pb2.ResumeServiceResponse:
        return await _call(self._sync.resume, service_id)


class AsyncClient:
    """:class:`dtpoc_client.Client` for asyncio (same constructor); ``async with`` closes it."""

    def __init__(self, server: str, token: str | None = None, **options: Any) -> None:
        self.sync = Client(server, token, **options)
        self.files = AsyncFiles(self.sync.files)
        self.services = AsyncServices(self.sync.services)

    async def healthz(self) -> str:
        return await _call(self.sync.healthz)

    async def version(self) -> orchestrator_pb2.GetVersionResponse:
        return await _call(self.sync.version)

    async def api_version(self) -> str:
        return await _call(self.sync.api_version)

    async def close(self) -> None:
        await _call(self.sync.close)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
