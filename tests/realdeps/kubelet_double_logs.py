"""The kubelet double's log endpoint: what a kubelet serves the apiserver for pod logs.

``GET pods/<pod>/log`` on the apiserver is a proxy: the apiserver looks up
the pod's Node, connects to its kubelet (``status.addresses`` InternalIP,
``status.daemonEndpoints.kubeletEndpoint.Port``, HTTPS) and streams
``/containerLogs/<namespace>/<pod>/<container>``. This serves that path from
lines the test hands the double (as a container would have printed them),
with the kubelet's query parameters ``timestamps``, ``follow`` (until the
container is finished), ``limitBytes``, ``tailLines`` and ``sinceSeconds``,
on loopback with a self-signed certificate (the apiserver does not verify a
kubelet's serving certificate unless told a CA). Only the double is fake:
the apiserver's proxying, RBAC and the clients are the real ones.
"""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import ssl
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOOPBACK = "127.0.0.1"
Key = tuple[str, str, str]


def _stamp(moment: dt.datetime) -> str:
    """RFC 3339 with nanoseconds, as the kubelet prefixes lines with ``timestamps=true``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def write_serving_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubelet-double")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "kubelet.crt", directory / "kubelet.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class ContainerLogs:
    """Lines per container, and which containers have finished (a follow ends)."""

    def __init__(self) -> None:
        self._lines: dict[Key, list[tuple[dt.datetime, bytes]]] = {}
        self._finished: set[Key] = set()
        self._changed = threading.Condition()

    def append(self, key: Key, lines: list[str]) -> None:
        now = dt.datetime.now(dt.UTC)
        with self._changed:
            self._lines.setdefault(key, []).extend((now, (t + "\n").encode()) for t in lines)
            self._changed.notify_all()

    def finish(self, key: Key) -> None:
        with self._changed:
            self._finished.add(key)
            self._changed.notify_all()

    def read(
        self, key: Key, start: int, *, wait: float
    ) -> tuple[list[tuple[dt.datetime, bytes]], bool]:
        """Lines from ``start`` (waiting up to ``wait`` for some), and whether it finished."""
        with self._changed:
            if len(self._lines.get(key, [])) <= start and key not in self._finished:
                self._changed.wait(wait)
            return self._lines.get(key, [])[start:], key in self._finished


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body ends with the connection: a follow streams
    logs: ContainerLogs

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "containerLogs":
            self.send_error(404)
            return
        key = (parts[1], parts[2], parts[3])
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self._stream(key, query)

    def _stream(self, key: Key, query: dict[str, str]) -> None:
        follow = query.get("follow") == "true"
        stamps = query.get("timestamps") == "true"
        limit = int(query.get("limitBytes", "0") or 0) or None
        since = int(query.get("sinceSeconds", "0") or 0)
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=since) if since else None
        lines, finished = self.logs.read(key, 0, wait=0)
        position, sent = len(lines), 0
        if "tailLines" in query:
            count = int(query["tailLines"])
            lines = lines[len(lines) - count :] if count else []
        while True:
            for moment, text in lines:
                if cutoff is not None and moment < cutoff:
                    continue
                data = (_stamp(moment) + " ").encode() + text if stamps else text
                if limit is not None and sent + len(data) > limit:
                    self.wfile.write(data[: limit - sent])
                    return
                self.wfile.write(data)
                sent += len(data)
            self.wfile.flush()
            if not follow or finished:
                return
            lines, finished = self.logs.read(key, position, wait=0.5)
            position += len(lines)


class LogServer:
    """The HTTPS server on loopback; :attr:`port` goes into the Node's status."""

    def __init__(self, workdir: Path, logs: ContainerLogs) -> None:
        self.logs = logs
        handler = type("Handler", (_Handler,), {"logs": self.logs})
        self._server = http.server.ThreadingHTTPServer((LOOPBACK, 0), handler)
        self._server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*write_serving_cert(workdir))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
