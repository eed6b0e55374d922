"""The gRPC transport: the generated stubs, the caller's token as metadata.

A target is ``grpc://host:port`` (plain) or ``grpcs://host:port`` (TLS with
the system's roots). Files and the Orchestrator are two services; they may
share one address (behind one proxy) or the Files target is given apart.
The token travels as ``authorization: Bearer <token>``, the form both
services check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, cast

import grpc
from google.protobuf import message

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2, orchestrator_pb2_grpc
from dtpoc_client import errors, rpcs
from dtpoc_client.transport import Download, R

TIMEOUT_SECONDS = 60.0
STREAM_TIMEOUT_SECONDS = 3600.0
_OPTIONS = [
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]


def open_channel(target: str) -> grpc.Channel:
    """A channel to ``grpc://host:port`` or ``grpcs://host:port``."""
    if target.startswith("grpcs://"):
        return grpc.secure_channel(
            target.removeprefix("grpcs://"), grpc.ssl_channel_credentials(), options=_OPTIONS
        )
    return grpc.insecure_channel(target.removeprefix("grpc://"), options=_OPTIONS)


def api_error(exc: grpc.RpcError) -> errors.DtpocError:
    """The same error class the REST transport raises for this status."""
    call = cast(grpc.Call, exc)
    status = call.code()
    name = status.name if status is not None else "UNKNOWN"
    text = call.details() or name
    if status is grpc.StatusCode.UNAVAILABLE and "connect" in text.lower():
        return errors.ConnectionFailed(text)
    return errors.api_error(
        code=errors.HTTP_OF_GRPC.get(name, 500), status=name, message=text, details=None
    )


@contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except grpc.RpcError as exc:
        raise api_error(exc) from None


class GrpcTransport:
    """The API over gRPC (see the module docstring)."""

    def __init__(self, target: str, *, token: str | None, files_target: str | None = None) -> None:
        self.server = target
        self._channels = [open_channel(target)]
        if files_target and files_target != target:
            self._channels.append(open_channel(files_target))
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._files = files_pb2_grpc.FilesServiceStub(self._channels[-1])
        self._orchestrator = orchestrator_pb2_grpc.OrchestratorServiceStub(self._channels[0])

    def _stub_method(self, name: str) -> Callable[..., Any]:
        stub: Any = self._files if name in rpcs.FILES.methods_by_name else self._orchestrator
        return cast(Callable[..., Any], getattr(stub, name))

    def unary(self, name: str, request: message.Message, response: type[R]) -> R:
        with _mapped():
            answer = self._stub_method(name)(
                request, timeout=TIMEOUT_SECONDS, metadata=self._metadata
            )
        return cast(R, answer)

    def upload(
        self, header: files_pb2.UploadFileHeader, chunks: Iterable[bytes], *, length: int
    ) -> files_pb2.UploadFileResponse:
        first = files_pb2.UploadFileHeader()
        first.CopyFrom(header)
        first.expected_length = length

        def requests() -> Iterator[files_pb2.UploadFileRequest]:
            yield files_pb2.UploadFileRequest(header=first)
            for chunk in chunks:
                yield files_pb2.UploadFileRequest(chunk=chunk)
            yield files_pb2.UploadFileRequest(finish=True)

        with _mapped():
            answer: files_pb2.UploadFileResponse = self._files.UploadFile(
                requests(), timeout=STREAM_TIMEOUT_SECONDS, metadata=self._metadata
            )
        return answer

    @contextmanager
    def download(self, request: files_pb2.GetFileRequest) -> Iterator[Download]:
        call = self._files.GetFile(request, timeout=STREAM_TIMEOUT_SECONDS, metadata=self._metadata)
        try:
            with _mapped():
                first = next(iter(call))
            info = first.info if first.WhichOneof("payload") == "info" else files_pb2.FileInfo()

            def chunks() -> Iterator[bytes]:
                if first.WhichOneof("payload") == "chunk":
                    yield first.chunk
                with _mapped():
                    for item in call:
                        yield item.chunk

            yield Download(info=info, chunks=chunks())
        finally:
            call.cancel()

    @contextmanager
    def _server_stream(self, rpc: Any, request: message.Message) -> Iterator[Iterator[Any]]:
        """``rpc``'s messages, errors mapped; the call is cancelled on exit."""
        call = rpc(request, timeout=STREAM_TIMEOUT_SECONDS, metadata=self._metadata)

        def messages() -> Iterator[Any]:
            with _mapped():
                yield from call

        try:
            yield messages()
        finally:
            call.cancel()

    def watch(
        self, request: orchestrator_pb2.WatchServiceRequest
    ) -> AbstractContextManager[Iterator[orchestrator_pb2.WatchServiceResponse]]:
        return self._server_stream(self._orchestrator.WatchService, request)

    def logs(
        self, request: orchestrator_pb2.GetReplicaLogRequest
    ) -> AbstractContextManager[Iterator[orchestrator_pb2.GetReplicaLogResponse]]:
        return self._server_stream(self._orchestrator.GetReplicaLog, request)

    def api_version(self) -> str:
        self.unary("Healthz", orchestrator_pb2.HealthzRequest(), orchestrator_pb2.HealthzResponse)
        return rpcs.API_VERSION

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
