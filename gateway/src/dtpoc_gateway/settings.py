"""The gateway's settings, read from ``DTPOC_GATEWAY_*`` environment variables.

Which backend serves which proto service is configuration, not code: the
two named addresses cover today's services and :attr:`GatewaySettings.backends`
(a JSON map of full service name to ``host:port``) covers any service added
to the protos later. A service without an address still gets its routes;
they answer 503 naming the service.

Authentication is on unless explicitly disabled: with neither token hashes
nor ``DTPOC_GATEWAY_AUTH_DISABLED=true`` the gateway refuses to start
(:class:`SettingsError`), so a forgotten secret never exposes the API.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

import dtpoc
from dtpoc_common.settings import OptionalPath
from dtpoc_common.vocabulary import API_PREFIX

FILES_SERVICE = "dtpoc.files.v1alpha1.FilesService"
ORCHESTRATOR_SERVICE = "dtpoc.orchestrator.v1alpha1.OrchestratorService"
MIB = 1024 * 1024
_LINK = re.compile(r"(https?://[^\s/?#]+|/(?!/))[^\s]*")
"""A console link: an http(s) URL with a host, or a path of this host (never ``//host``)."""


class SettingsError(ValueError):
    """The settings cannot make a safe gateway; the message says what to set."""


def _split_list(value: object) -> object:
    """Accept a JSON list or a comma-separated string for list settings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class GatewaySettings(BaseSettings):
    """Everything the gateway process can be told, with safe defaults."""

    model_config = SettingsConfigDict(env_prefix="DTPOC_GATEWAY_", extra="ignore")

    #: Address the HTTP server listens on (``host:port``).
    listen: str = "127.0.0.1:8080"
    #: Log level name.
    log_level: str = "INFO"
    #: Seconds in-flight requests get to finish on SIGTERM.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    #: Seconds an idle keep-alive connection stays open; longer than a proxy's idle
    #: timeout (nginx: 60 s) so that the proxy, not the gateway, closes first.
    keep_alive_seconds: int = Field(default=75, ge=1)
    #: Seconds a connection gets to send a complete request head (request line and
    #: headers); a slower one answers 408 and is closed (slow-loris clients).
    header_timeout_seconds: float = Field(default=15.0, gt=0)
    #: Largest request head, in bytes; a larger one answers 431.
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    #: Connections plus in-flight requests served at once; beyond it new requests
    #: answer 503 at once instead of queueing without bound.
    limit_concurrency: int = Field(default=1000, ge=1)
    #: Connections the kernel queues before they are accepted.
    backlog: int = Field(default=2048, ge=1)
    #: Seconds a JSON request body gets to arrive whole (408 after).
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    #: Seconds an upload may go without receiving a byte (408 after); a slow but
    #: steady upload of any length is fine.
    upload_idle_seconds: float = Field(default=60.0, gt=0)

    #: ``host:port`` of the Files service (``dtpoc.files.v1alpha1.FilesService``).
    files_address: str | None = None
    #: ``host:port`` of the Orchestrator (``dtpoc.orchestrator.v1alpha1.OrchestratorService``).
    orchestrator_address: str | None = None
    #: Generic map: full proto service name -> ``host:port`` (JSON object).
    #: The two named addresses above take precedence for their services.
    backends: dict[str, str] = Field(default_factory=dict)

    #: FileDescriptorSet (with source info) the routes and the OpenAPI document come from.
    descriptor_set: Path = Path(dtpoc.__file__).parent / "descriptors.binpb"
    #: Prefix of the REST paths in the protos.
    api_prefix: str = API_PREFIX
    #: Also answer every route without :attr:`api_prefix`, as the original did.
    serve_without_prefix: bool = True
    #: Answer 400 for query parameters that name no request field (instead of ignoring them).
    reject_unknown_query_parameters: bool = True

    #: Deadline of a unary gRPC call made for a REST request, in seconds.
    call_timeout_seconds: float = Field(default=30.0, gt=0)
    #: Deadline of a streaming call (upload, download, Server-Sent Events), in seconds.
    stream_timeout_seconds: float = Field(default=3600.0, gt=0)
    #: Seconds between keep-alive comments on an idle Server-Sent Events stream.
    sse_keepalive_seconds: float = Field(default=15.0, gt=0)
    #: Largest JSON request body, in bytes (413 above it).
    max_json_body_bytes: int = Field(default=1 * MIB, gt=0)
    #: Largest multipart upload body, in bytes (413 above it), as the original ingress allowed.
    max_upload_bytes: int = Field(default=512 * MIB, gt=0)
    #: Size of each chunk message streamed to an upload RPC.
    upload_chunk_bytes: int = Field(default=1 * MIB, gt=0, le=4 * MIB)
    #: Largest gRPC message received from or sent to a backend.
    max_message_bytes: int = Field(default=8 * MIB, gt=0)
    #: File holding the gateway's own token, presented on every call to a
    #: backend (they refuse calls without a known caller token). Unset: none.
    grpc_token_file: OptionalPath = None

    #: File of SHA-256 hex digests of accepted bearer tokens, one per line, ``#`` comments.
    auth_tokens_file: Path | None = None
    #: SHA-256 hex digests of accepted bearer tokens (JSON list or comma-separated).
    auth_token_hashes: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Turns authentication off. Only for a local run on a trusted machine.
    auth_disabled: bool = False
    #: Paths answered without a token (exact match; the prefix-less twins are added).
    open_paths: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "/healthz",
            "/readyz",
            "/livez",
            "/openapi.json",
            "/docs",
            "/docs/*",
        ]
    )

    #: Folder of the built web console served at ``/`` (``make console``); unset:
    #: ``console/dist`` of the source tree. Absent build: ``/`` says how to build it.
    console_dir: OptionalPath = None

    #: Where the web console links to Grafana (``GET /console/links.json``): an
    #: http(s) URL or a path on this host (``/grafana/``); unset: no link. The chart
    #: sets it where it runs Grafana.
    links_grafana: str | None = None
    #: Where the web console links to Node-RED's editor, as :attr:`links_grafana`.
    links_node_red: str | None = None

    #: Origins allowed by CORS (JSON list or comma-separated); none by default.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Whether CORS answers allow credentials (cookies); never together with ``*``.
    cors_allow_credentials: bool = False

    @field_validator("auth_token_hashes", "open_paths", "cors_origins", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("auth_tokens_file", "files_address", "orchestrator_address", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("links_grafana", "links_node_red", mode="before")
    @classmethod
    def _link(cls, value: object) -> object:
        """Empty is unset; anything else must be an http(s) URL or an absolute path."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str) or not _LINK.fullmatch(value.strip()):
            raise ValueError(f"must be an http(s) URL or a path starting with '/', not {value!r}")
        return value.strip()

    @field_validator("api_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and not value.startswith("/"):
            raise ValueError("api_prefix must start with '/'")
        return value

    def backend_map(self) -> dict[str, str]:
        """Full service name -> address, the named settings overriding the map."""
        merged = dict(self.backends)
        if self.files_address:
            merged[FILES_SERVICE] = self.files_address
        if self.orchestrator_address:
            merged[ORCHESTRATOR_SERVICE] = self.orchestrator_address
        return merged

    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit():
            raise SettingsError(f"DTPOC_GATEWAY_LISTEN must be host:port, not {self.listen!r}")
        return host.strip("[]"), int(port)

    def check_cors(self) -> None:
        """Refuse the one CORS setting that leaks credentials to any site."""
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise SettingsError(
                "DTPOC_GATEWAY_CORS_ORIGINS may not contain '*' while "
                "DTPOC_GATEWAY_CORS_ALLOW_CREDENTIALS is true; list the origins"
            )
