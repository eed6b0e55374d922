"""Shared code of tests/gateway: what its fixtures (conftest.py) and its tests use.

A named module rather than conftest.py, so that tests import it like any other
module (pytest loads conftest files itself; importing them by name is fragile).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

import dtpoc
from dtpoc_common.vocabulary import API_PREFIX
from dtpoc_local.servers import gateway

PREFIX = API_PREFIX
DOC_URL = f"{PREFIX}/openapi.json"


@contextlib.contextmanager
def gateway_before(
    address: str, *, workdir: Path, **options: Any
) -> Iterator[gateway.GatewayServer]:
    """A gateway process in front of the orchestrator at ``address`` (the double), with
    ``options`` for :func:`dtpoc_local.servers.gateway.start_gateway`; stopped afterwards."""
    server = gateway.start_gateway(workdir=workdir, orchestrator_address=address, **options)
    try:
        yield server
    finally:
        server.stop()


def openapi_document(api: httpx.Client) -> dict[str, Any]:
    """The OpenAPI document the gateway serves."""
    answer = api.get(DOC_URL)
    assert answer.status_code == 200
    doc: dict[str, Any] = answer.json()
    return doc


def abort_id(code: grpc.StatusCode) -> str:
    """A service id the double answers with ``code`` (see doubles)."""
    return f"abort-{code.name}"


def assert_error_shape(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, Any] = answer.json()
    assert set(body) == {"code", "status", "message", "details", "detail"}
    assert body["code"] == status and body["detail"] == body["message"]
    assert isinstance(body["details"], list)
    assert "Traceback" not in answer.text and 'File "' not in answer.text
    return body


def declared_bindings(files: descriptor_pb2.FileDescriptorSet) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for file in files.file:
        for service in file.service:
            for method in service.method:
                options = descriptor_pb2.MethodOptions.FromString(
                    method.options.SerializeToString()
                )
                if not options.HasExtension(annotations_pb2.http):
                    continue
                rule = options.Extensions[annotations_pb2.http]
                for binding in [rule, *rule.additional_bindings]:
                    kind = binding.WhichOneof("pattern")
                    assert kind is not None
                    found.add((kind.upper(), getattr(binding, kind)))
    return found


def project_bindings() -> set[tuple[str, str]]:
    data = (Path(dtpoc.__file__).parent / "descriptors.binpb").read_bytes()
    return declared_bindings(descriptor_pb2.FileDescriptorSet.FromString(data))
