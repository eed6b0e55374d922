"""One client cannot starve the others: header timeout, concurrency limit, head size.

The gateway here is started with a small concurrency limit (4) and a short
header timeout (1 s), so that a handful of slow-loris connections would take
every slot forever if nothing evicted them.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dtpoc_local import waiting
from dtpoc_local.servers import gateway

LIMIT = 4
SLOW_CLIENTS = LIMIT + 2


@pytest.fixture
def guarded(gateway_server: Any) -> gateway.GatewayServer:
    server: gateway.GatewayServer = gateway_server(
        env={
            "DTPOC_GATEWAY_LIMIT_CONCURRENCY": str(LIMIT),
            "DTPOC_GATEWAY_HEADER_TIMEOUT_SECONDS": "1",
            "DTPOC_GATEWAY_BODY_TIMEOUT_SECONDS": "1",
            "DTPOC_GATEWAY_UPLOAD_IDLE_SECONDS": "1",
        }
    )
    return server


class SlowLoris:
    """A connection that sends ``first``, then ``each`` (if any) every 0.2 s, forever.

    By default a request head, one header line at a time.
    """

    def __init__(
        self,
        base_url: str,
        first: bytes = b"GET /readyz HTTP/1.1\r\nHost: gateway\r\n",
        each: bytes | None = b"X-Slow: still here\r\n",
    ) -> None:
        host, _, port = base_url.removeprefix("http://").rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.sock.sendall(first)
        self.each = each
        self.answer = b""
        self.closed = threading.Event()
        self._stop = threading.Event()
        self._dribbler = threading.Thread(target=self._dribble, daemon=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._dribbler.start()
        self._reader.start()

    def _dribble(self) -> None:
        while self.each is not None and not self._stop.wait(0.2) and not self.closed.is_set():
            try:
                self.sock.sendall(self.each)
            except OSError:
                return

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(4096):
                self.answer += chunk
        except OSError:
            pass
        self.closed.set()

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def slow_clients(guarded: gateway.GatewayServer) -> Iterator[list[SlowLoris]]:
    clients = [SlowLoris(guarded.base_url) for _ in range(SLOW_CLIENTS)]
    try:
        yield clients
    finally:
        for client in clients:
            client.stop()


def test_slow_loris_clients_do_not_stop_another_client_being_served(
    guarded: gateway.GatewayServer, slow_clients: list[SlowLoris]
) -> None:
    def served() -> bool:
        try:
            return httpx.get(guarded.url("/readyz"), timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    waiting.wait_for(served, timeout=20, what="another client served while slow ones hold on")
    waiting.wait_for(
        lambda: all(client.closed.is_set() for client in slow_clients),
        timeout=20,
        what="the gateway to close every slow-loris connection",
    )
    for client in slow_clients:
        assert client.answer.startswith(b"HTTP/1.1 408 "), client.answer[:200]
        assert b'"status":"DEADLINE_EXCEEDED"' in client.answer


def test_a_head_larger_than_the_limit_is_answered_431_and_read_by_the_client(
    guarded: gateway.GatewayServer,
) -> None:
    head = b"GET /readyz HTTP/1.1\r\nHost: gateway\r\n" + b"X-Big: " + b"b" * 200_000 + b"\r\n\r\n"
    host, _, port = guarded.base_url.removeprefix("http://").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"code":431' in answer


def test_a_json_body_slower_than_the_body_timeout_gets_408(guarded: gateway.GatewayServer) -> None:
    head = (
        b"POST /api/orchestrator/v1alpha1/service/launch HTTP/1.1\r\nHost: gateway\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    )
    client = SlowLoris(guarded.base_url, first=head, each=b" ")
    try:
        waiting.wait_for(client.closed.is_set, timeout=20, what="the slow body's connection closed")
    finally:
        client.stop()
    assert client.answer.startswith(b"HTTP/1.1 408 "), client.answer[:200]
    assert b"did not arrive within 1 s" in client.answer


def test_an_upload_that_stops_sending_gets_408(guarded: gateway.GatewayServer) -> None:
    head = (
        b"POST /api/orchestrator/v1alpha1/files/upload HTTP/1.1\r\nHost: gateway\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n"
    )
    client = SlowLoris(guarded.base_url, first=head, each=None)
    try:
        waiting.wait_for(client.closed.is_set, timeout=20, what="the stalled upload closed")
    finally:
        client.stop()
    assert client.answer.startswith(b"HTTP/1.1 408 "), client.answer[:200]


@pytest.fixture
def crowded(gateway_server: Any) -> gateway.GatewayServer:
    """A gateway taking 2 connections, with a header timeout long enough to keep them."""
    server: gateway.GatewayServer = gateway_server(
        env={"DTPOC_GATEWAY_LIMIT_CONCURRENCY": "2", "DTPOC_GATEWAY_HEADER_TIMEOUT_SECONDS": "60"}
    )
    return server


def test_an_overloaded_gateway_answers_503_json_with_retry_after(
    crowded: gateway.GatewayServer,
) -> None:
    """Beyond the concurrency limit the refusal has the body of every other error."""
    holders = [SlowLoris(crowded.base_url) for _ in range(2)]
    try:
        answer = httpx.get(crowded.url("/readyz"), timeout=30)
    finally:
        for holder in holders:
            holder.stop()
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["retry-after"] == "1"
    body = answer.json()
    assert body["code"] == 503 and body["status"] == "UNAVAILABLE"
    assert "try again" in body["message"] and body["detail"] == body["message"]
    served = waiting.wait_for(
        lambda: httpx.get(crowded.url("/readyz"), timeout=30).status_code == 200,
        timeout=30,
        what="the gateway to serve again once the holders left",
    )
    assert served


def test_a_connection_whose_request_comes_after_the_header_timeout_is_served(
    guarded: gateway.GatewayServer,
) -> None:
    """A client on a starved machine opens a connection and writes its request late: the
    header timeout counts from the head's first byte, so this is not a slow head."""
    host, _, port = guarded.base_url.removeprefix("http://").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        # Quiet for longer than the 1 s header timeout before the first byte; a
        # deliberate pause, the scenario itself (not a wait for a condition).
        threading.Event().wait(2.5)
        sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
