"""The gateway reaches the backends as itself: its gRPC token on every channel.

People still authenticate with the API's bearer token; what the gateway
presents to Files and the Orchestrator is its own component token, and a
gateway without it gets nothing from them.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

import httpx

from dtpoc_common.vocabulary import API_PREFIX as PREFIX
from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.gateway import GatewayServer
from dtpoc_local.servers.orchestrator import OrchestratorServer
from dtpoc_local.waiting import wait_for


def test_rest_with_the_api_token_works_through_the_gateways_own_credentials(
    gateway_server: Callable[..., GatewayServer],
    files_server: FilesServer,
    orchestrator_server: OrchestratorServer,
) -> None:
    api_token = secrets.token_urlsafe(32)
    gateway = gateway_server(
        files_address=files_server.address,
        orchestrator_address=orchestrator_server.address,
        token_hashes=[hashlib.sha256(api_token.encode()).hexdigest()],
    )
    headers = {"Authorization": f"Bearer {api_token}"}
    with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=30) as client:
        uploaded = client.post(f"{PREFIX}/files/upload", files={"file": ("in.csv", b"a,b\n")})
        assert uploaded.status_code == 200, uploaded.text
        assert client.get(f"{PREFIX}/files").status_code == 200
        assert client.get(f"{PREFIX}/service/").status_code == 200
    # The API token is the person's; it never reaches a backend as a credential.
    assert api_token not in files_server.log_path.read_text()


def test_a_gateway_without_its_grpc_token_gets_nothing_from_the_backends(
    gateway_server: Callable[..., GatewayServer], files_server: FilesServer
) -> None:
    gateway = gateway_server(
        files_address=files_server.address, env={"DTPOC_GATEWAY_GRPC_TOKEN_FILE": ""}
    )
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
        answer = client.get(f"{PREFIX}/files")
    # A server misconfiguration, not the client's token: 502, no internal address.
    assert answer.status_code == 502, answer.text
    body = answer.json()
    assert "misconfigured, not your API token" in body["message"]
    assert files_server.address not in answer.text
    wait_for(
        lambda: '"grpc call refused"' in files_server.log_path.read_text(),
        timeout=10,
        what="Files to log the refused call",
    )
    wait_for(
        lambda: "refused the gateway's own credential" in gateway.log_path.read_text(),
        timeout=10,
        what="the gateway to log the refusal with its detail",
    )
