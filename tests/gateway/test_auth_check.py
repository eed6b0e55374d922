"""``GET /auth/check``: the API's token verdict for the Ingress of an exposed analytics service.

ingress-nginx's external auth sends the client's request headers to this
endpoint and forwards the request only on a 2xx; it then copies the
``Authorization`` header of this answer into the forwarded request, so the
answer must not carry one (the service never sees the caller's token).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from dtpoc_local.servers import gateway
from tests.gateway import doubles, helpers

TOKEN = "token-of-a-dashboard-user"

http = httpx.Client(timeout=30.0)


@pytest.fixture(scope="module")
def secured(
    orchestrator_double: tuple[doubles.OrchestratorDouble, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[gateway.GatewayServer]:
    _double, address = orchestrator_double
    with helpers.gateway_before(
        address,
        workdir=tmp_path_factory.mktemp("auth-check"),
        token_hashes=[hashlib.sha256(TOKEN.encode()).hexdigest()],
    ) as server:
        yield server


def test_an_accepted_token_passes_and_is_not_handed_on(secured: gateway.GatewayServer) -> None:
    answer = http.get(
        secured.url("/auth/check"),
        headers={
            "Authorization": f"Bearer {TOKEN}",
            # What ingress-nginx adds to the subrequest; the verdict does not depend on it.
            "X-Original-URL": "https://dtpoc.example.org/0123456789abcdef01234567/",
            "X-Original-Method": "POST",
        },
    )
    assert answer.status_code == 204
    assert answer.content == b""
    assert "authorization" not in answer.headers


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_a_missing_or_wrong_token_is_refused(
    secured: gateway.GatewayServer, header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    answer = http.get(secured.url("/auth/check"), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith('Bearer realm="dtpoc"')


def test_the_check_is_documented_as_needing_the_token(secured: gateway.GatewayServer) -> None:
    document = http.get(secured.url("/openapi.json")).json()
    operation = document["paths"]["/auth/check"]["get"]
    assert "security" not in operation  # the document's default: the bearer token
    assert set(operation["responses"]) == {"204", "401", "403"}


def test_without_authentication_the_check_refuses_everyone(
    double_gateway: gateway.GatewayServer,
) -> None:
    # double_gateway runs with DTPOC_GATEWAY_AUTH_DISABLED=true.
    for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
        answer = http.get(double_gateway.url("/auth/check"), headers=headers)
        assert answer.status_code == 403
        assert "authentication is disabled" in answer.json()["message"]
