"""Only known callers reach the orchestrator: the gateway for what people do, the
Files service for its usage question only, nobody else for anything."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import grpc
import pytest

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2, orchestrator_pb2_grpc
from dtpoc_common import grpcauth
from dtpoc_local.credentials import credentials
from dtpoc_local.servers.orchestrator import OrchestratorServer
from tests.realdeps import grpccalls

CALL_TIMEOUT = 30.0
FILE_ID = "0123456789abcdef01234567"


@pytest.fixture
def stub_as(
    orchestrator_server: OrchestratorServer,
) -> Iterator[Callable[[str | None], orchestrator_pb2_grpc.OrchestratorServiceStub]]:
    """``stub_as(token)``: a client presenting ``token`` (None: no metadata at all)."""
    yield from grpccalls.stubs_as(
        orchestrator_server.address, orchestrator_pb2_grpc.OrchestratorServiceStub
    )


_code = grpccalls.refusal_code


def _list(stub: orchestrator_pb2_grpc.OrchestratorServiceStub) -> object:
    return stub.ListServices(orchestrator_pb2.ListServicesRequest(), timeout=CALL_TIMEOUT)


def _usage(stub: orchestrator_pb2_grpc.OrchestratorServiceStub) -> object:
    return stub.GetFileUsage(
        orchestrator_pb2.GetFileUsageRequest(file_id=FILE_ID), timeout=CALL_TIMEOUT
    )


def _terminate(stub: orchestrator_pb2_grpc.OrchestratorServiceStub) -> object:
    return stub.TerminateService(
        orchestrator_pb2.TerminateServiceRequest(id=FILE_ID), timeout=CALL_TIMEOUT
    )


def test_no_or_unknown_token_is_unauthenticated(
    stub_as: Callable[[str | None], orchestrator_pb2_grpc.OrchestratorServiceStub],
) -> None:
    for token in [None, secrets.token_urlsafe(32)]:
        stub = stub_as(token)
        assert _code(lambda: _list(stub)) == grpc.StatusCode.UNAUTHENTICATED  # noqa: B023
        assert _code(lambda: _terminate(stub)) == grpc.StatusCode.UNAUTHENTICATED  # noqa: B023


def test_each_component_reaches_only_its_methods(
    stub_as: Callable[[str | None], orchestrator_pb2_grpc.OrchestratorServiceStub],
) -> None:
    gateway = stub_as(credentials().token(grpcauth.GATEWAY))
    assert _list(gateway) is not None
    assert _usage(gateway) == orchestrator_pb2.GetFileUsageResponse()  # GET /files/{id}/usage

    files = stub_as(credentials().token(grpcauth.FILES))
    assert _usage(files) == orchestrator_pb2.GetFileUsageResponse()  # nobody mounts it
    assert _code(lambda: _list(files)) == grpc.StatusCode.PERMISSION_DENIED
    assert _code(lambda: _terminate(files)) == grpc.StatusCode.PERMISSION_DENIED

    # The operator never calls the orchestrator; neither does a fetch token.
    operator = stub_as(credentials().token(grpcauth.OPERATOR))
    assert _code(lambda: _list(operator)) == grpc.StatusCode.PERMISSION_DENIED
    fetch = grpcauth.mint_fetch_token(
        credentials().fetch_key(), service_id="s", file_ids=[FILE_ID], expires_at=2**40
    )
    assert _code(lambda: _usage(stub_as(fetch))) == grpc.StatusCode.UNAUTHENTICATED
