"""A read-only registry on the host's veth address, serving the imported OCI archives.

Pods whose image has the tag ``latest`` (the original's
``digital-hosp-des:latest``) or ``imagePullPolicy: Always`` make the kubelet
pull even when the image is present, and nothing can be pulled from outside
here. containerd is told (registry mirrors) to ask this server first for each
registry host the archives name: it answers the OCI distribution API's reads
(``/v2/``, manifests, blobs) from the archives' own files, so a pull resolves
on this machine. An image it does not have gets a 404, and containerd then
tries the real host and fails: that failure is what a user sees for a missing
image.
"""

from __future__ import annotations

import json
import tarfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tools.cluster import layout

PORT = 5000
CHUNK = 1 << 20
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)


@dataclass
class Store:
    """Blobs (digest -> archive, member) and references (host/name:tag -> manifest digest)."""

    blobs: dict[str, tuple[Path, str]] = field(default_factory=dict)
    refs: dict[str, tuple[str, str]] = field(default_factory=dict)

    def add(self, archive: Path) -> None:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.startswith("blobs/sha256/"):
                    self.blobs["sha256:" + member.name.rsplit("/", 1)[1]] = (archive, member.name)
            index_file = tar.extractfile("index.json")
            if index_file is None:
                return
            index = json.loads(index_file.read())
        for entry in index.get("manifests") or []:
            ref = (entry.get("annotations") or {}).get("org.opencontainers.image.ref.name", "")
            if ":" in ref.rsplit("/", 1)[-1]:
                self.refs[ref] = (entry["digest"], entry["mediaType"])

    def hosts(self) -> set[str]:
        return {ref.split("/", 1)[0] for ref in self.refs if "/" in ref}

    def resolve(self, host: str, name: str, reference: str) -> tuple[str, str] | None:
        """(digest, media type) of ``host/name:reference`` or of a digest reference."""
        if reference.startswith("sha256:"):
            return (reference, MANIFEST_TYPES[0]) if reference in self.blobs else None
        return self.refs.get(f"{host}/{name}:{reference}")


def _handler(store: Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, *, body: bool) -> None:
            path, _, query = self.path.partition("?")
            host = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("ns", "")
            if path in ("/v2", "/v2/"):
                return self._send(HTTPStatus.OK, b"{}", "application/json", body=body)
            parts = path.removeprefix("/v2/").rsplit("/", 2)
            if len(parts) != 3 or parts[1] not in ("manifests", "blobs"):
                return self._send(HTTPStatus.NOT_FOUND, b"", "text/plain", body=body)
            name, kind, reference = parts
            media = "application/octet-stream"
            if kind == "manifests":
                found = store.resolve(host, name, reference)
                if found is None:
                    return self._send(HTTPStatus.NOT_FOUND, b"", "text/plain", body=body)
                reference, media = found
            if reference not in store.blobs:
                return self._send(HTTPStatus.NOT_FOUND, b"", "text/plain", body=body)
            self._send_blob(reference, media, body=body)
            return None

        def _send(self, status: HTTPStatus, data: bytes, media: str, *, body: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _send_blob(self, digest: str, media: str, *, body: bool) -> None:
            archive, member = store.blobs[digest]
            with tarfile.open(archive) as tar:
                info = tar.getmember(member)
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", media)
                self.send_header("Content-Length", str(info.size))
                self.send_header("Docker-Content-Digest", digest)
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.end_headers()
                stream = tar.extractfile(info)
                if body and stream is not None:
                    while chunk := stream.read(CHUNK):
                        self.wfile.write(chunk)

    return Handler


class Registry:
    """The server, on ``layout.HOST_IP:PORT`` only (reachable from the node, not beyond)."""

    def __init__(self, archives: Iterable[Path]) -> None:
        self.store = Store()
        for archive in archives:
            self.store.add(archive)
        self._server = ThreadingHTTPServer((layout.HOST_IP, PORT), _handler(self.store))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://{layout.HOST_IP}:{PORT}"

    def start(self) -> Registry:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def mirrors_config(hosts: Iterable[str], endpoint: str) -> str:
    """containerd CRI ``registry.mirrors`` entries sending each host to ``endpoint`` first."""
    lines = []
    for host in sorted(hosts):
        lines.append(f'[plugins."io.containerd.grpc.v1.cri".registry.mirrors."{host}"]')
        lines.append(f'  endpoint = ["{endpoint}"]')
    return "\n".join(lines) + "\n"
