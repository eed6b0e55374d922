"""``Client``: one object for the whole API, over REST or gRPC."""

from __future__ import annotations

from types import TracebackType

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_client import rest
from dtpoc_client.api import Files, Services
from dtpoc_client.transport import Transport

GRPC_SCHEMES = ("grpc://", "grpcs://")


def is_grpc_target(server: str) -> bool:
    """Whether ``server`` names a gRPC target rather than the gateway's URL."""
    return server.startswith(GRPC_SCHEMES)


class Client:
    """The dtpoc API at ``server`` with ``token``.

    ``server`` is the gateway's URL (``http://127.0.0.1:8000``, with or
    without the API prefix) for REST, or a gRPC target (``grpc://host:port``,
    ``grpcs://host:port``) of the Orchestrator; ``files_server`` is the Files
    service's gRPC target when it is not the same. ``verify`` is httpx's TLS
    verification (``False`` or a CA bundle path). Use it as a context
    manager, or call :meth:`close`.
    """

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        files_server: str | None = None,
        verify: bool | str = True,
    ) -> None:
        self.server = server
        self.transport: Transport
        if is_grpc_target(server):
            from dtpoc_client import grpcio  # grpc is imported only when used

            self.transport = grpcio.GrpcTransport(server, token=token, files_target=files_server)
        else:
            self.transport = rest.RestTransport(server, token=token, verify=verify)
        self.files = Files(self.transport)
        self.services = Services(self.transport)

    def healthz(self) -> str:
        """The API's health answer (``ok``)."""
        answer = self.transport.unary(
            "Healthz", orchestrator_pb2.HealthzRequest(), orchestrator_pb2.HealthzResponse
        )
        return answer.status

    def version(self) -> orchestrator_pb2.GetVersionResponse:
        """The platform's release and API version (``version``, ``api_version``).

        A server older than ``GetVersion`` refuses it (404 over REST, 501
        UNIMPLEMENTED over gRPC); :meth:`api_version` still answers there.
        """
        return self.transport.unary(
            "GetVersion", orchestrator_pb2.GetVersionRequest(), orchestrator_pb2.GetVersionResponse
        )

    def api_version(self) -> str:
        """The API version the server speaks (``v1alpha1``)."""
        return self.transport.api_version()

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
