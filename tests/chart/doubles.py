"""Test doubles for running a rendered telegraf.conf against the real Telegraf.

Neither Mosquitto nor InfluxDB can run here, so Telegraf talks to two small
stand-ins on loopback, each doing only what a sensor's Telegraf needs:

- :class:`MqttBrokerDouble` speaks enough MQTT 3.1.1 for a subscriber:
  CONNECT/CONNACK (recording the credentials), SUBSCRIBE/SUBACK, PINGREQ,
  and delivers its canned messages (QoS 0) to every matching subscription.
- :class:`InfluxWriteDouble` answers InfluxDB v2's ``POST /api/v2/write``
  (gzip or plain line protocol) and records each write with its query and
  ``Authorization`` header.
"""

from __future__ import annotations

import gzip
import http.server
import socket
import socketserver
import struct
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

from dtpoc_local import ports

# --- MQTT --------------------------------------------------------------------------------------


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching with ``+`` (one level) and ``#`` (the rest)."""
    filter_levels, topic_levels = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True
        if i >= len(topic_levels) or (level != "+" and level != topic_levels[i]):
            return False
    return len(filter_levels) == len(topic_levels)


def _encode_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _string(data: bytes, offset: int) -> tuple[str, int]:
    (size,) = struct.unpack_from("!H", data, offset)
    return data[offset + 2 : offset + 2 + size].decode(), offset + 2 + size


@dataclass
class Connection:
    """What one MQTT client said when it connected and subscribed."""

    client_id: str = ""
    username: str | None = None
    password: str | None = None
    subscriptions: list[tuple[str, int]] = field(default_factory=list)


class MqttBrokerDouble:
    """A loopback MQTT 3.1.1 broker double that hands out canned messages."""

    def __init__(self, messages: list[tuple[str, bytes]]) -> None:
        self.messages = messages
        self.connections: list[Connection] = []
        self.port = ports.free_port()
        broker = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                broker._serve(self.request)

        self._server = socketserver.ThreadingTCPServer((ports.LOOPBACK, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"tcp://{ports.LOOPBACK}:{self.port}"

    def __enter__(self) -> MqttBrokerDouble:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, sock: socket.socket) -> None:
        stream = sock.makefile("rb")
        connection = Connection()
        self.connections.append(connection)
        while True:
            first = stream.read(1)
            if not first:
                return
            length, multiplier = 0, 1
            while True:
                byte = stream.read(1)[0]
                length += (byte & 0x7F) * multiplier
                multiplier *= 128
                if not byte & 0x80:
                    break
            body = stream.read(length)
            kind = first[0] >> 4
            if kind == 1:  # CONNECT
                self._connect(connection, body)
                sock.sendall(b"\x20\x02\x00\x00")
            elif kind == 8:  # SUBSCRIBE
                self._subscribe(sock, connection, body)
            elif kind == 12:  # PINGREQ
                sock.sendall(b"\xd0\x00")
            elif kind == 14:  # DISCONNECT
                return

    @staticmethod
    def _connect(connection: Connection, body: bytes) -> None:
        _, offset = _string(body, 0)  # protocol name
        flags = body[offset + 1]
        offset += 4  # level, flags, keep-alive
        connection.client_id, offset = _string(body, offset)
        if flags & 0x04:  # will topic and message
            _, offset = _string(body, offset)
            _, offset = _string(body, offset)
        if flags & 0x80:
            connection.username, offset = _string(body, offset)
        if flags & 0x40:
            connection.password, offset = _string(body, offset)

    def _subscribe(self, sock: socket.socket, connection: Connection, body: bytes) -> None:
        packet_id, offset, granted = body[:2], 2, bytearray()
        filters = []
        while offset < len(body):
            topic_filter, offset = _string(body, offset)
            qos = body[offset]
            offset += 1
            filters.append(topic_filter)
            connection.subscriptions.append((topic_filter, qos))
            granted.append(qos)
        sock.sendall(b"\x90" + _encode_length(2 + len(granted)) + packet_id + bytes(granted))
        for topic, payload in self.messages:
            if any(topic_matches(f, topic) for f in filters):
                encoded = topic.encode()
                variable = struct.pack("!H", len(encoded)) + encoded
                sock.sendall(b"\x30" + _encode_length(len(variable) + len(payload)) + variable)
                sock.sendall(payload)


# --- InfluxDB v2 writes --------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """One ``POST /api/v2/write``: its query, Authorization header and line protocol."""

    query: dict[str, list[str]]
    authorization: str
    lines: list[str]


class InfluxWriteDouble:
    """A loopback InfluxDB v2 write endpoint that records what it is sent."""

    def __init__(self) -> None:
        self.writes: list[Write] = []
        self.port = ports.free_port()
        writes = self.writes

        class Handler(http.server.BaseHTTPRequestHandler):
            def _body(self) -> bytes:
                if "chunked" not in self.headers.get("Transfer-Encoding", ""):
                    return self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    chunk = self.rfile.read(size + 2)[:size]  # data, then CRLF
                    if not size:
                        return body
                    body += chunk

            def do_POST(self) -> None:
                url = urlparse(self.path)
                body = self._body()
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if url.path == "/api/v2/write":
                    writes.append(
                        Write(
                            query=parse_qs(url.query),
                            authorization=self.headers.get("Authorization", ""),
                            lines=[line for line in body.decode().splitlines() if line],
                        )
                    )
                    self.send_response(204)
                else:
                    self.send_response(404)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return

        self._server = http.server.ThreadingHTTPServer((ports.LOOPBACK, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{ports.LOOPBACK}:{self.port}"

    def __enter__(self) -> InfluxWriteDouble:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
