"""The gateway's error mapping in-process (no gateway process): gRPC status to HTTP, the
error body's shape, a backend that is down (503) or too slow (504), and the 400s of what
cannot become a request message. Connection limits and the process's own logs need a
real server and stay in ``tests/gateway``."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from fastapi.testclient import TestClient

from dtpoc_gateway import app as gateway_app
from dtpoc_gateway import settings
from tests.gateway import doubles
from tests.gateway.helpers import PREFIX, abort_id, assert_error_shape

MAPPING = [
    (grpc.StatusCode.INVALID_ARGUMENT, 400),
    (grpc.StatusCode.FAILED_PRECONDITION, 400),
    (grpc.StatusCode.OUT_OF_RANGE, 400),
    (grpc.StatusCode.NOT_FOUND, 404),
    (grpc.StatusCode.ALREADY_EXISTS, 409),
    (grpc.StatusCode.ABORTED, 409),
    (grpc.StatusCode.PERMISSION_DENIED, 403),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, 413),  # size limits only: never a retryable 429
    (grpc.StatusCode.UNIMPLEMENTED, 501),
    (grpc.StatusCode.UNAVAILABLE, 503),
    (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
    (grpc.StatusCode.INTERNAL, 500),
    (grpc.StatusCode.UNKNOWN, 500),
    (grpc.StatusCode.DATA_LOSS, 500),
    (grpc.StatusCode.CANCELLED, 499),
]
HIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}


@pytest.mark.parametrize(("code", "status"), MAPPING, ids=[c.name for c, _ in MAPPING])
def test_grpc_status_maps_to_http(api: httpx.Client, code: grpc.StatusCode, status: int) -> None:
    answer = api.get(f"{PREFIX}/service/{abort_id(code)}/status")
    body = assert_error_shape(answer, status)
    assert body["status"] == code.name
    if code in HIDDEN:
        assert body["message"] == "internal error; the server log has the details"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        assert "did not answer in time" in body["message"]
    else:
        assert body["message"] == f"double says {code.name}"


def test_a_backend_refusing_the_gateways_credential_is_502_not_the_clients_401(
    api: httpx.Client,
) -> None:
    """People's tokens are checked by the gateway; a backend's UNAUTHENTICATED is about the
    gateway's own credential, which no client can fix."""
    answer = api.get(f"{PREFIX}/service/{abort_id(grpc.StatusCode.UNAUTHENTICATED)}/status")
    body = assert_error_shape(answer, 502)
    assert body["status"] == "INTERNAL"
    assert "misconfigured, not your API token" in body["message"]
    assert "double says" not in body["message"], "the backend's own text stays in the log"
    assert "www-authenticate" not in answer.headers


def test_unknown_id_is_404(api: httpx.Client) -> None:
    body = assert_error_shape(api.get(f"{PREFIX}/service/{'f' * 24}/status"), 404)
    assert "not found" in body["message"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"image": "x", "bogus": 1}, "bogus"),
        ({"image": "x", "port": "abc"}, "port"),
        ({"image": "x", "ana": {"reps": "two"}}, "ana.reps"),
        ({"image": "x", "ana": {"job_tpe": "ondemand"}}, "ana.job_tpe"),
        ({"image": "x", "env": ["A=1"]}, "env"),
        ({"image": 5}, "image"),
    ],
)
def test_bad_json_fields_are_named(api: httpx.Client, payload: dict[str, Any], field: str) -> None:
    body = assert_error_shape(api.post(f"{PREFIX}/service/launch", json=payload), 400)
    assert body["status"] == "INVALID_ARGUMENT"
    assert field in body["message"]
    violations = body["details"][0]["field_violations"]
    assert violations[0]["field"] == field


def test_malformed_bodies(api: httpx.Client) -> None:
    url = f"{PREFIX}/service/launch"
    body = assert_error_shape(api.post(url, content=b'{"image": '), 400)
    assert "not valid JSON" in body["message"]
    body = assert_error_shape(api.post(url, json=["image"]), 400)
    assert "JSON object" in body["message"]
    body = assert_error_shape(
        api.post(url, content=b"image=x", headers={"Content-Type": "text/plain"}), 415
    )
    assert "application/json" in body["message"]
    assert_error_shape(api.post(url, content=b"\xff\xfe{}"), 400)
    assert_error_shape(api.post(url, content=b"x" * (1024 * 1024 + 1)), 413)


def test_path_parameters_of_the_wrong_type(api: httpx.Client) -> None:
    body = assert_error_shape(api.get(f"{PREFIX}/service/{'a' * 24}/output/abc"), 400)
    assert body["message"].startswith("idx:")
    assert body["details"][0]["field_violations"][0]["field"] == "idx"
    assert_error_shape(api.get(f"{PREFIX}/service/{'a' * 24}/output/99999999999"), 400)


def test_unknown_query_parameters(api: httpx.Client) -> None:
    body = assert_error_shape(api.get(f"{PREFIX}/service/", params={"sort": "name"}), 400)
    assert "sort" in body["message"]
    body = assert_error_shape(api.get(f"{PREFIX}/service/", params={"limit": "ten"}), 400)
    assert body["message"].startswith("limit:")
    body = assert_error_shape(
        api.post(f"{PREFIX}/service/launch", params={"image": "x"}, json={}), 400
    )
    assert "body" in body["message"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _gateway(**fields: Any) -> Iterator[TestClient]:
    """The gateway in-process with these settings (and no auth)."""
    config = settings.GatewaySettings(auth_disabled=True, grpc_token_file=None, **fields)
    with TestClient(gateway_app.build(config)) as client:
        yield client


def test_a_backend_that_is_down_answers_503_naming_it() -> None:
    with _gateway(orchestrator_address=f"127.0.0.1:{_closed_port()}") as client:
        answer = client.get(f"{PREFIX}/service/")
        body = assert_error_shape(answer, 503)
        assert body["message"] == (
            "backend dtpoc.orchestrator.v1alpha1.OrchestratorService is unreachable; "
            "try again later"
        )
        assert answer.headers["retry-after"] == "1"
        unconfigured = client.get(f"{PREFIX}/files")
        body = assert_error_shape(unconfigured, 503)
        assert "dtpoc.files.v1alpha1.FilesService" in body["message"]


def test_a_slow_backend_answers_504(
    orchestrator_double: tuple[doubles.OrchestratorDouble, str],
) -> None:
    double, address = orchestrator_double
    slow = double.add_service(image="slow")
    double.slow_ids.add(slow.id)
    with _gateway(orchestrator_address=address, call_timeout_seconds=0.2) as client:
        answer = client.get(f"{PREFIX}/service/{slow.id}/status")
        body = assert_error_shape(answer, 504)
        assert body["status"] == "DEADLINE_EXCEEDED"


async def test_fastapi_validation_errors_use_the_same_shape() -> None:
    config = settings.GatewaySettings(auth_disabled=True)
    application = gateway_app.build(config)

    @application.get("/typed/{number}")
    async def typed(number: int) -> dict[str, int]:
        return {"number": number}

    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answer = await client.get("/typed/abc")
    assert answer.status_code == 400
    body = answer.json()
    assert set(body) == {"code", "status", "message", "details", "detail"}
    assert body["details"][0]["field_violations"][0]["field"] == "path.number"


def test_a_backend_asking_for_a_retry_delay_sets_retry_after() -> None:
    """A full launch queue answers UNAVAILABLE with google.rpc.RetryInfo: the client is told
    to come back then (bounded), not after a second with every other refused client."""
    from google.protobuf import duration_pb2
    from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

    from dtpoc_gateway import httperrors

    def refused(seconds: int) -> grpc.aio.AioRpcError:
        status = status_pb2.Status(code=grpc.StatusCode.UNAVAILABLE.value[0], message="busy")
        status.details.add().Pack(
            error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds))
        )
        trailer = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
        return grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), trailer, details="busy"
        )

    answer = httperrors.from_rpc_error(refused(7), service="orchestrator", reachable=True)
    assert answer.http_status == 503 and answer.headers["Retry-After"] == "7"
    longest = httperrors.from_rpc_error(refused(3600), service="orchestrator", reachable=True)
    assert longest.headers["Retry-After"] == str(httperrors.MAX_RETRY_AFTER_SECONDS)
