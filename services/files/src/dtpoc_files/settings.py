"""Settings of the Files service, read from ``DTPOC_FILES_*`` environment variables.

The MongoDB connection is shared by every dtpoc process and comes from
``DTPOC_MONGODB_URI`` / ``DTPOC_MONGODB_TIMEOUT_MS`` (the ``DTPOC_FILES_``
spellings are accepted too, so one process can be pointed elsewhere).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from dtpoc_common import limits
from dtpoc_common.settings import (
    BaseServiceSettings,
    OptionalPath,
    mongodb_timeout_field,
    mongodb_uri_field,
)

MIB = 1024 * 1024


class FilesSettings(BaseServiceSettings):
    """Everything ``dtpoc-files`` needs to run; one instance per process."""

    model_config = SettingsConfigDict(env_prefix="DTPOC_FILES_", extra="ignore")

    #: MongoDB connection string. Carries credentials when there are any, so it
    #: only ever comes from the environment.
    mongodb_uri: str = mongodb_uri_field("DTPOC_FILES_")
    #: Milliseconds to wait for the database before a call answers UNAVAILABLE.
    #: Short, so that a client hears "database unreachable" rather than a
    #: deadline of its own.
    mongodb_timeout_ms: int = mongodb_timeout_field("DTPOC_FILES_")
    #: Database holding the GridFS bucket (the original's name).
    database: str = "orchestrator_files"
    #: GridFS bucket name: collections ``<bucket>.files`` and ``<bucket>.chunks``.
    bucket: str = "fs"
    #: Largest file accepted, in bytes (the original's ingress allowed 512 MiB).
    max_upload_bytes: int = Field(default=limits.DEFAULT_MAX_UPLOAD_BYTES, gt=0)
    #: Size of the GridFS chunks new uploads are stored in. 255 KiB is the
    #: GridFS default every driver uses; larger chunks mean fewer documents.
    gridfs_chunk_bytes: int = Field(default=255 * 1024, gt=0, le=15 * MIB)
    #: Size of the byte messages a download is sent in.
    download_chunk_bytes: int = Field(default=1 * MIB, gt=0, le=4 * MIB)
    #: Address (``host:port``) of the orchestrator's gRPC API, asked before a
    #: file is deleted whether a live service mounts it. Empty: not asked.
    orchestrator_address: str = ""
    #: Whether deletes without ``force`` must ask the orchestrator. Only an
    #: explicit ``false`` skips the check when no orchestrator address is set.
    usage_check: bool = True
    #: Seconds the orchestrator gets to answer a usage question.
    orchestrator_timeout_seconds: float = Field(default=5.0, gt=0)
    #: Seconds without a heartbeat after which a pending upload counts as
    #: abandoned (its server crashed) and the sweep removes its chunks.
    pending_upload_stale_seconds: float = Field(default=600.0, gt=0)
    #: Seconds between sweeps for abandoned uploads (the first runs at start).
    sweep_interval_seconds: float = Field(default=300.0, gt=0)
    #: File holding the key that verifies fetch tokens (the operator holds the
    #: same key and mints them for init containers). Unset: none accepted.
    fetch_key_file: OptionalPath = None
