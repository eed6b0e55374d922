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

from tests.platform import gateway
from tests.realdeps import waiting

LIMIT = 4
SLOW_CLIENTS = LIMIT + 2


@pytest.fixture
def guarded(gateway_server: Any) -> gateway.GatewayServer:
    server: gateway.GatewayServer = gateway_server(
        env={
            "DTPOC_GATEWAY_LIMIT_CONCURRENCY": str(LIMIT),
            "DTPOC_GATEWAY_HEADER_TIMEOUT_SECONDS": "1",
        }
    )
    return server


class SlowLoris:
    """A connection that sends a request head one header line at a time, forever."""

    def __init__(self, base_url: str) -> None:
        host, _, port = base_url.removeprefix("http://").rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: gateway\r\n")
        self.answer = b""
        self.closed = threading.Event()
        self._stop = threading.Event()
        self._dribbler = threading.Thread(target=self._dribble, daemon=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._dribbler.start()
        self._reader.start()

    def _dribble(self) -> None:
        number = 0
        while not self._stop.wait(0.2) and not self.closed.is_set():
            try:
                self.sock.sendall(f"X-Slow-{number}: still here\r\n".encode())
            except OSError:
                return
            number += 1

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
