"""Backend error texts keep the platform's inside to the logs.

A REST client reads a clear message; internal addresses (``host:port``,
IPs, unix sockets, URLs) and the Kubernetes API server's own answer appear
only in the gateway's log line of the failed call, with the request id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
from bson import ObjectId
from hypothesis import given
from hypothesis import strategies as st

from dtpoc_gateway import redact
from dtpoc_local import ports
from dtpoc_local.kube import KubeCluster
from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.orchestrator import OrchestratorServer
from tests.gateway.helpers import PREFIX

_octet = st.integers(0, 255).map(str)
_port = st.integers(1, 65535).map(str)
_label = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
addresses = st.one_of(
    st.tuples(_octet, _octet, _octet, _octet, _port).map(lambda p: ".".join(p[:4]) + ":" + p[4]),
    st.tuples(_octet, _octet, _octet, _octet).map(".".join),
    st.tuples(st.lists(_label, min_size=1, max_size=4), _port).map(
        lambda p: ".".join(p[0]) + ":" + p[1]
    ),
    st.tuples(st.sampled_from(["ipv6:[::1]", "[fe80::1]", "[2001:db8::7]"]), _port).map(":".join),
    st.lists(_label, min_size=1, max_size=3).map(lambda p: "/run/" + "/".join(p) + ".sock"),
    st.lists(_label, min_size=1, max_size=3).map(lambda p: "unix:/var/" + "/".join(p)),
    st.tuples(st.sampled_from(["http", "https", "dns", "unix"]), _label, _port).map(
        lambda p: f"{p[0]}://{p[1]}:{p[2]}/x"
    ),
)
_words = st.text(st.sampled_from("abcdefgh ,;()'\"-"), max_size=30)


@given(before=_words, address=addresses, after=_words)
def test_no_generated_address_survives_the_scrub(before: str, address: str, after: str) -> None:
    message = f"{before} {address} {after}"
    assert address not in redact.scrub(message)


def _answer_and_log(
    client: httpx.Client, log_path: Any, method: str, path: str, **kwargs: Any
) -> tuple[httpx.Response, list[dict[str, Any]]]:
    answer = client.request(method, path, **kwargs)
    request_id = answer.headers["x-request-id"]
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    return answer, [line for line in lines if line.get("request_id") == request_id]


def test_unreachable_files_behind_the_orchestrator_is_a_503_without_its_address(
    orchestrator_server_factory: Callable[..., OrchestratorServer], gateway_server: Any
) -> None:
    nowhere = f"127.0.0.1:{ports.free_port()}"
    orchestrator = orchestrator_server_factory(
        files_address=nowhere, DTPOC_ORCHESTRATOR_FILES_TIMEOUT_SECONDS="2"
    )
    gateway = gateway_server(orchestrator_address=orchestrator.address)
    body = {
        "image": "ghcr.io/example/analytics",
        "ana": {"job_type": "ondemand", "reps": 1},
        "command": ["true"],
        "mount_files": {str(ObjectId()): "in.xlsx"},
    }
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
        answer, logged = _answer_and_log(
            client, gateway.log_path, "POST", f"{PREFIX}/service/launch", json=body
        )
    assert answer.status_code == 503, answer.text
    assert nowhere not in answer.text and "127.0.0.1" not in answer.text, answer.text
    assert "files service unreachable" in answer.json()["message"]
    assert any(nowhere in str(line.get("grpc_message")) for line in logged), logged


def test_the_apiserver_answer_stays_in_the_log(
    orchestrator_server_factory: Callable[..., OrchestratorServer],
    files_server: FilesServer,
    kube: KubeCluster,
    gateway_server: Any,
) -> None:
    missing = f"absent-{ObjectId()}"
    orchestrator = orchestrator_server_factory(
        files_address=files_server.address,
        backend="kubernetes",
        kubeconfig_path=kube.kubeconfig_path,
        namespace=missing,
    )
    gateway = gateway_server(orchestrator_address=orchestrator.address)
    body = {"image": "ghcr.io/example/analytics", "ana": {"job_type": "ondemand", "reps": 1}}
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
        answer, logged = _answer_and_log(
            client, gateway.log_path, "POST", f"{PREFIX}/service/launch", json=body
        )
    assert 400 <= answer.status_code < 500, answer.text
    message = answer.json()["message"]
    # The API server's own words name the missing namespace in quotes: "absent-..." not found.
    assert not re.search(r'"absent-[0-9a-f]+"|not found', message, re.IGNORECASE), message
    assert "orchestrator's log" in message
    assert any("not found" in str(line.get("grpc_message")).lower() for line in logged), logged
