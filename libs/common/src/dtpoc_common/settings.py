"""One settings object per process, read from ``DTPOC_*`` environment variables.

Each service subclasses :class:`BaseServiceSettings` with its own prefix
(``DTPOC_FILES_``, ``DTPOC_ORCHESTRATOR_``...). No default names a remote
host or holds a credential: addresses default to loopback for a local run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, BeforeValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _empty_is_none(value: object) -> object:
    return None if value == "" else value


#: A file or folder setting where an empty value means "not set" (as unset).
OptionalPath = Annotated[Path | None, BeforeValidator(_empty_is_none)]


class BaseServiceSettings(BaseSettings):
    """Settings every gRPC service shares."""

    model_config = SettingsConfigDict(env_prefix="DTPOC_", extra="ignore")

    #: Address the gRPC server listens on (``host:port``); port 0 picks a free one.
    listen: str = "127.0.0.1:0"
    #: Log level name.
    log_level: str = "INFO"
    #: Seconds in-flight calls get to finish on shutdown.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    #: Largest gRPC message accepted or sent, in bytes.
    max_message_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    #: Folder of the tokens this server accepts: one file per calling
    #: component, named by it (``gateway``, ``operator``...), e.g. a mounted
    #: Secret (see ``dtpoc_common.grpcauth``). Unset: the server does not start
    #: unless ``insecure_no_auth``.
    caller_tokens_dir: OptionalPath = None
    #: File holding this process's own token, presented when it calls another
    #: dtpoc gRPC service. Unset: it calls without one.
    grpc_token_file: OptionalPath = None
    #: Serve without authenticating callers when no ``caller_tokens_dir`` is
    #: set. Without it, such a server refuses to start: secure by default.
    #: Only for a trusted machine: every call of anyone is then accepted.
    insecure_no_auth: bool = False


def mongodb_uri_field(prefix: str) -> Any:
    """The ``mongodb_uri`` setting of a service whose variables start with ``prefix``.

    Read from ``<prefix>MONGODB_URI``, else the shared ``DTPOC_MONGODB_URI``.
    The URI carries credentials when there are any, so it comes from the
    environment (or a mounted secret), never from code; the default is the
    loopback server of a local run.
    """
    return Field(
        default="mongodb://127.0.0.1:27017/",
        validation_alias=AliasChoices(f"{prefix}MONGODB_URI", "DTPOC_MONGODB_URI"),
    )


def mongodb_timeout_field(prefix: str) -> Any:
    """The ``mongodb_timeout_ms`` setting: milliseconds to wait for MongoDB
    before a call answers UNAVAILABLE (``<prefix>MONGODB_TIMEOUT_MS``, else
    ``DTPOC_MONGODB_TIMEOUT_MS``). Short, so that a client hears "database
    unreachable" rather than a deadline of its own."""
    return Field(
        default=5000,
        gt=0,
        validation_alias=AliasChoices(f"{prefix}MONGODB_TIMEOUT_MS", "DTPOC_MONGODB_TIMEOUT_MS"),
    )
