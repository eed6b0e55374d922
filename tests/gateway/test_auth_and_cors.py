"""Bearer tokens (hashed, constant-time), open paths, the refusal to run open by accident, CORS."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dtpoc_local.servers import gateway
from tests.gateway import doubles, helpers
from tests.gateway.helpers import PREFIX

TOKEN = "s3cret-token-for-tests"
OTHER_TOKEN = "second-token"

#: One client for the module; a generous timeout for a busy shared machine.
http = httpx.Client(timeout=30.0)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def secured(
    orchestrator_double: tuple[doubles.OrchestratorDouble, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[gateway.GatewayServer]:
    """A gateway with a tokens file (comments included) plus one hash from the environment."""
    _double, address = orchestrator_double
    folder = tmp_path_factory.mktemp("secured")
    tokens = folder / "tokens"
    tokens.write_text(
        f"# accepted bearer tokens (SHA-256)\n\n{sha256(TOKEN)}  # the lab's client\n"
    )
    with helpers.gateway_before(
        address,
        workdir=folder,
        token_hashes=[sha256(OTHER_TOKEN)],
        env={
            "DTPOC_GATEWAY_AUTH_TOKENS_FILE": str(tokens),
            "DTPOC_GATEWAY_CORS_ORIGINS": "https://console.example.org,https://other.example.org",
        },
    ) as server:
        yield server


def test_api_paths_need_a_token(secured: gateway.GatewayServer) -> None:
    for path in (f"{PREFIX}/service/", "/service/", f"{PREFIX}/files"):
        answer = http.get(secured.url(path))
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == 'Bearer realm="dtpoc"'
        body = answer.json()
        assert body["status"] == "UNAUTHENTICATED" and body["code"] == 401


def test_a_wrong_token_is_refused(secured: gateway.GatewayServer) -> None:
    for header in ("Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer", TOKEN):
        answer = http.get(secured.url(f"{PREFIX}/service/"), headers={"Authorization": header})
        assert answer.status_code == 401, header
    answer = http.get(secured.url(f"{PREFIX}/service/"), headers={"Authorization": "Bearer no"})
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


def test_valid_tokens_from_the_file_and_the_environment(secured: gateway.GatewayServer) -> None:
    for token in (TOKEN, OTHER_TOKEN):
        answer = http.get(
            secured.url(f"{PREFIX}/service/"), headers={"Authorization": f"bearer {token}"}
        )
        assert answer.status_code == 200, answer.text


def test_health_readiness_and_docs_stay_open(secured: gateway.GatewayServer) -> None:
    for path in (
        f"{PREFIX}/healthz",
        "/healthz",
        "/readyz",
        "/livez",
        f"{PREFIX}/openapi.json",
        f"{PREFIX}/docs",
        f"{PREFIX}/docs/init.js",
        f"{PREFIX}/docs/static/swagger-ui-bundle.js",
        "/docs",
        "/openapi.json",
    ):
        assert http.get(secured.url(path)).status_code == 200, path


def test_cors_allows_only_the_configured_origins(secured: gateway.GatewayServer) -> None:
    preflight = http.options(
        secured.url(f"{PREFIX}/service/launch"),
        headers={
            "Origin": "https://console.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://console.example.org"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in preflight.headers

    answer = http.get(
        secured.url(f"{PREFIX}/service/"),
        headers={"Origin": "https://other.example.org", "Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.headers["access-control-allow-origin"] == "https://other.example.org"
    assert "content-disposition" in answer.headers["access-control-expose-headers"].lower()

    stranger = http.options(
        secured.url(f"{PREFIX}/service/launch"),
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert stranger.status_code == 400
    assert "access-control-allow-origin" not in stranger.headers
    denied = http.get(
        secured.url(f"{PREFIX}/healthz"), headers={"Origin": "https://evil.example.com"}
    )
    assert "access-control-allow-origin" not in denied.headers


def _run_gateway(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    variables = {
        "PATH": "/usr/bin:/bin",
        "DTPOC_GATEWAY_LISTEN": "127.0.0.1:1",  # never reached: the settings are refused first
        **env,
    }
    return subprocess.run(
        [gateway.gateway_executable()],
        env=variables,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "no bearer token hashes configured"),
        ({"DTPOC_GATEWAY_AUTH_DISABLED": "false"}, "DTPOC_GATEWAY_AUTH_DISABLED=true"),
        ({"DTPOC_GATEWAY_AUTH_TOKEN_HASHES": "not-a-hash"}, "64-digit hex SHA-256"),
        ({"DTPOC_GATEWAY_AUTH_TOKENS_FILE": "/nonexistent/tokens"}, "/nonexistent/tokens"),
        (
            {
                "DTPOC_GATEWAY_AUTH_DISABLED": "true",
                "DTPOC_GATEWAY_CORS_ORIGINS": "*",
                "DTPOC_GATEWAY_CORS_ALLOW_CREDENTIALS": "true",
            },
            "may not contain '*'",
        ),
    ],
)
def test_unsafe_settings_refuse_to_start(
    env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    result = _run_gateway(env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_hash_token_prints_the_sha256_of_stdin(tmp_path: Path) -> None:
    result = subprocess.run(
        [gateway.gateway_executable(), "hash-token"],
        input=TOKEN + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == sha256(TOKEN)
    empty = subprocess.run(
        [gateway.gateway_executable(), "hash-token"],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert empty.returncode == 2 and "no token" in empty.stderr


def test_the_local_run_may_disable_auth_explicitly(gateway_server: Any) -> None:
    server = gateway_server()  # the fixture sets DTPOC_GATEWAY_AUTH_DISABLED=true
    assert http.get(server.url(f"{PREFIX}/service/")).status_code == 503  # no backend, no 401
