"""The REST transport: the gateway's JSON, multipart upload, byte download and SSE.

Unary calls are built from the RPC's ``google.api.http`` binding
(:mod:`dtpoc_client.rpcs`): path fields into the template, the rest into
the JSON body (``body: "*"``) or the query string; the answer (its
``response_body`` field, when the binding names one) is parsed into the
generated response message. Unknown fields in answers are ignored, so a
newer server does not break an older client.
"""

from __future__ import annotations

import json
import re
import secrets
import ssl
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from google.protobuf import json_format, message

from dtpoc.files.v1alpha1 import files_pb2
from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_client import errors, rpcs
from dtpoc_client.transport import CHUNK_BYTES, Download, R

TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=300.0, pool=30.0)
"""Reads wait long: an upload's answer comes once Files has stored the last chunk."""

_FILENAME_STAR = re.compile(r"filename\*=UTF-8''([^;]+)", re.IGNORECASE)
_FILENAME = re.compile(r'filename="([^"]*)"', re.IGNORECASE)


def base_url(server: str) -> str:
    """``server`` without a trailing slash or the API prefix (both are accepted)."""
    url = server.rstrip("/")
    prefix = rpcs.api_prefix()
    return url[: -len(prefix)] if url.endswith(prefix) else url


def query_items(values: dict[str, Any], *, prefix: str = "") -> list[tuple[str, str]]:
    """Proto JSON of a request as query parameters (dotted names for nested fields)."""
    items: list[tuple[str, str]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items.extend(query_items(value, prefix=f"{name}."))
        elif isinstance(value, list):
            items.extend((name, _scalar(v)) for v in value)
        else:
            items.append((name, _scalar(value)))
    return items


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _answer_json(response: httpx.Response) -> Any:
    """A success answer's JSON; ProtocolError when it is not JSON (not the gateway?)."""
    data = _json(response)
    if data is None:
        raise errors.ProtocolError(
            f"the server's answer to {response.request.url.path} is not JSON:"
            " is this the dtpoc gateway?"
        )
    return data


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    response.read()
    fallback = f"the server answered {response.status_code} {response.reason_phrase}"
    raise errors.from_problem(response.status_code, _json(response), fallback=fallback)


def parse(data: Any, response: type[R], *, field: str = "") -> R:
    """Proto JSON ``data`` (of ``field`` alone when given) into a new ``response``."""
    try:
        return json_format.ParseDict(
            {field: data} if field else data, response(), ignore_unknown_fields=True
        )
    except json_format.ParseError as exc:
        raise errors.ProtocolError(f"the server's answer is not a {response.__name__}") from exc


def file_info_from_headers(file_id: str, headers: httpx.Headers) -> files_pb2.FileInfo:
    """What a byte download's headers say of the file."""
    info = files_pb2.FileInfo(file_id=file_id)
    disposition = headers.get("content-disposition", "")
    if star := _FILENAME_STAR.search(disposition):
        info.filename = urllib.parse.unquote(star.group(1).strip())
    elif plain := _FILENAME.search(disposition):
        info.filename = plain.group(1)
    if length := headers.get("content-length"):
        info.length = int(length)
    info.content_type = headers.get("content-type", "")
    info.sha256 = headers.get("etag", "").strip('"')
    return info


def multipart_parts(filename: str, content_type: str) -> tuple[str, bytes, bytes]:
    """Boundary, part head and closing bytes of a one-part form around a file's bytes."""
    boundary = secrets.token_hex(16)
    safe = filename.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{safe}"\r\n'
        f"Content-Type: {content_type or 'application/octet-stream'}\r\n\r\n"
    ).encode()
    return boundary, head, f"\r\n--{boundary}--\r\n".encode()


def tls_verify(server: str, verify: bool | str) -> ssl.SSLContext | bool | str:
    """httpx's ``verify`` for ``server``: no CA bundle loaded for a plain-HTTP server.

    httpx reads the whole trust store when a client is made, https or not: a
    third of a second of CPU in every ``dtpoc`` run against ``http://``. The
    context given instead still verifies and trusts no CA, so any https
    request it might make fails closed rather than unverified.
    """
    if verify is True and server.startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return verify


class RestTransport:
    """The API through the gateway's REST surface (see the module docstring)."""

    def __init__(self, server: str, *, token: str | None, verify: bool | str = True) -> None:
        headers = {"User-Agent": "dtpoc-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.server = base_url(server)
        self._http = httpx.Client(
            base_url=self.server,
            headers=headers,
            timeout=TIMEOUT,
            verify=tls_verify(self.server, verify),
        )

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.TransportError as exc:
            raise errors.ConnectionFailed(f"cannot reach {self.server}: {exc}") from exc

    def unary(self, name: str, request: message.Message, response: type[R]) -> R:
        bind = rpcs.binding(name)
        fields = json_format.MessageToDict(request, preserving_proto_field_name=True)
        for path_field in bind.path_fields():
            fields.pop(path_field, None)
        body = fields if bind.body == "*" else None
        params = httpx.QueryParams(tuple(query_items(fields))) if bind.body != "*" else None
        with self._errors():
            answer = self._http.request(bind.verb, bind.path(request), json=body, params=params)
        _raise_for(answer)
        return parse(_answer_json(answer), response, field=bind.response_body)

    def upload(
        self, header: files_pb2.UploadFileHeader, chunks: Iterable[bytes], *, length: int
    ) -> files_pb2.UploadFileResponse:
        boundary, head, tail = multipart_parts(header.filename, header.content_type)

        def body() -> Iterator[bytes]:
            yield head
            yield from chunks
            yield tail

        params: dict[str, str] = {"expected_length": str(length)}
        if header.expected_sha256:
            params["expected_sha256"] = header.expected_sha256
        with self._errors():
            answer = self._http.post(
                rpcs.binding("UploadFile").template,
                content=body(),
                params=params,
                headers={
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                    "Content-Length": str(len(head) + length + len(tail)),
                },
            )
        _raise_for(answer)
        uploaded = parse(_answer_json(answer), files_pb2.UploadFileResponse)
        # The REST answer has no `deduplicated`; its `message` is set exactly then.
        uploaded.deduplicated = uploaded.deduplicated or bool(uploaded.message)
        return uploaded

    @contextmanager
    def download(self, request: files_pb2.GetFileRequest) -> Iterator[Download]:
        headers = {}
        if request.offset or request.length:
            last = str(request.offset + request.length - 1) if request.length else ""
            headers["Range"] = f"bytes={request.offset}-{last}"
        with (
            self._errors(),
            self._http.stream(
                "GET", rpcs.binding("GetFile").path(request), headers=headers
            ) as answer,
        ):
            _raise_for(answer)
            info = file_info_from_headers(request.file_id, answer.headers)

            encoded = answer.headers.get("content-encoding", "identity") != "identity"

            def chunks() -> Iterator[bytes]:
                # The socket's own pieces: no re-chunking copy (bytes are never encoded here).
                with self._errors():
                    yield from answer.iter_bytes(CHUNK_BYTES) if encoded else answer.iter_raw()

            yield Download(info=info, chunks=chunks())

    @contextmanager
    def watch(
        self, request: orchestrator_pb2.WatchServiceRequest
    ) -> Iterator[Iterator[orchestrator_pb2.WatchServiceResponse]]:
        path = rpcs.binding("WatchService").path(request)
        with (
            self._errors(),
            self._http.stream("GET", path, headers={"Accept": "text/event-stream"}) as answer,
        ):
            _raise_for(answer)
            yield self._events(answer, orchestrator_pb2.WatchServiceResponse)

    @contextmanager
    def logs(
        self, request: orchestrator_pb2.GetReplicaLogRequest
    ) -> Iterator[Iterator[orchestrator_pb2.GetReplicaLogResponse]]:
        bind = rpcs.binding("GetReplicaLog")
        fields = json_format.MessageToDict(request, preserving_proto_field_name=True)
        for path_field in bind.path_fields():
            fields.pop(path_field, None)
        params = httpx.QueryParams(tuple(query_items(fields)))
        with (
            self._errors(),
            self._http.stream("GET", bind.path(request), params=params) as answer,
        ):
            _raise_for(answer)
            if request.follow:  # Server-Sent Events of whole messages
                yield self._events(answer, orchestrator_pb2.GetReplicaLogResponse)
            else:  # text/plain
                yield (
                    orchestrator_pb2.GetReplicaLogResponse(text=piece)
                    for piece in answer.iter_text()
                )

    def _events(self, answer: httpx.Response, kind_of: type[R]) -> Iterator[R]:
        kind, data = "", []
        with self._errors():
            for line in answer.iter_lines():
                if line.startswith(":"):
                    continue
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif not line and data:
                    payload = json.loads("\n".join(data))
                    if kind == "error":
                        code = payload.get("code") if isinstance(payload, dict) else None
                        raise errors.from_problem(
                            code if isinstance(code, int) else 500,
                            payload,
                            fallback="the status stream failed",
                        )
                    yield parse(payload, kind_of)
                    kind, data = "", []

    def api_version(self) -> str:
        with self._errors():
            answer = self._http.get(rpcs.api_prefix() + "/openapi.json")
        _raise_for(answer)
        info = _json(answer)
        version = info.get("info", {}).get("version") if isinstance(info, dict) else None
        return str(version or "unknown")

    def close(self) -> None:
        self._http.close()
