"""What a stored file is and the rules about it, in plain Python (no I/O).

The adapter (:mod:`dtpoc_files.gridfs_store`) and the gRPC edge
(:mod:`dtpoc_files.servicer`) both speak these types, so the rules (what a
valid name is, when an upload is too large or corrupt, which byte range a
download asks for, how a page token looks) live in one place and can be
tested without a database.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dtpoc_common import errors

DEFAULT_CONTENT_TYPE = "application/octet-stream"
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
MAX_FILENAME_CHARS = 255

#: Metadata keys the service writes itself; an upload may not set them.
RESERVED_METADATA_KEYS = frozenset({"hash", "sha256"})
#: Message of a deduplicated upload, as the original answered it.
ALREADY_EXISTS_MESSAGE = "File already exists"

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_FILE_ID = re.compile(r"^[0-9a-f]{24}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse_file_id(text: str, *, field_name: str = "file_id") -> str:
    """The canonical (lower-case) form of a file id, or INVALID_ARGUMENT.

    File ids are MongoDB ObjectIds written as 24 hex digits, as in the original.
    """
    candidate = text.strip().lower()
    if not _FILE_ID.match(candidate):
        raise errors.InvalidArgument(
            f"not a file id: expected 24 hexadecimal digits, got {_quote(text)}",
            field=field_name,
        )
    return candidate


def is_file_id(text: str) -> bool:
    """Whether ``text`` is a file id in its canonical form."""
    return bool(_FILE_ID.match(text))


@dataclass(frozen=True)
class FileRecord:
    """One visible stored file, as a client sees it."""

    file_id: str
    filename: str
    length: int
    upload_date: datetime.datetime
    #: Everything under ``metadata`` in the GridFS files document, including
    #: ``hash``, ``sha256`` and ``content_type``.
    metadata: Mapping[str, Any]
    chunk_size: int
    #: Set on a row of a listing by output (:func:`output_row`): its number in
    #: the listing's sequence, the key its page token continues after.
    row: int | None = None

    @property
    def sha256(self) -> str:
        """Lower-case hex SHA-256, empty for files stored without one (legacy)."""
        value = self.metadata.get("sha256")
        return value if isinstance(value, str) else ""

    @property
    def content_type(self) -> str:
        value = self.metadata.get("content_type")
        return value if isinstance(value, str) and value else DEFAULT_CONTENT_TYPE


@dataclass(frozen=True)
class UploadHeader:
    """A validated upload header: what to store the coming bytes as."""

    filename: str
    content_type: str
    #: Labels given by the client (no reserved keys), integral numbers as ints.
    metadata: Mapping[str, Any]
    expected_sha256: str | None
    expected_length: int | None


def parse_upload_header(
    *,
    filename: str,
    content_type: str,
    metadata: Mapping[str, Any],
    expected_sha256: str,
    expected_length: int | None,
    max_bytes: int,
) -> UploadHeader:
    """Validate an upload header before any byte is stored."""
    name = validate_filename(filename)
    labels = normalise_metadata(metadata)
    reserved = sorted(RESERVED_METADATA_KEYS.intersection(labels))
    if reserved:
        raise errors.InvalidArgument(
            f"metadata keys {', '.join(reserved)} are reserved: the service computes them",
            field="header.metadata",
        )
    kind = content_type.strip() or str(labels.get("content_type") or "") or DEFAULT_CONTENT_TYPE
    sha = expected_sha256.strip().lower() or None
    if sha is not None and not _SHA256.match(sha):
        raise errors.InvalidArgument(
            "expected_sha256 must be 64 hexadecimal digits", field="header.expected_sha256"
        )
    if expected_length is not None:
        if expected_length < 0:
            raise errors.InvalidArgument(
                "expected_length must not be negative", field="header.expected_length"
            )
        if expected_length > max_bytes:
            raise errors.TooLarge(
                f"the file would be {expected_length} bytes; the limit is {max_bytes} bytes"
            )
    return UploadHeader(
        filename=name,
        content_type=kind,
        metadata=labels,
        expected_sha256=sha,
        expected_length=expected_length,
    )


def validate_filename(filename: str) -> str:
    """A plain file name: not empty, no folders, no control characters."""
    if not filename or not filename.strip():
        raise errors.InvalidArgument("a file name is required", field="header.filename")
    if len(filename) > MAX_FILENAME_CHARS:
        raise errors.InvalidArgument(
            f"the file name is longer than {MAX_FILENAME_CHARS} characters",
            field="header.filename",
        )
    if "/" in filename or "\\" in filename or filename in {".", ".."}:
        raise errors.InvalidArgument(
            "the file name must be a plain name without folders", field="header.filename"
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in filename):
        raise errors.InvalidArgument(
            "the file name contains control characters", field="header.filename"
        )
    return filename


def normalise_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Labels as they are stored.

    Protobuf ``Struct`` carries every number as a double; integral ones are
    stored as integers so that ``replica_index`` reads back as ``3``, not
    ``3.0``, for clients of the original. Keys must be storable in MongoDB.
    """
    return {_checked_key(key): _normalise_value(value) for key, value in metadata.items()}


def _checked_key(key: str) -> str:
    if not key or key.startswith("$") or "." in key or "\x00" in key:
        raise errors.InvalidArgument(
            f"metadata key {_quote(key)} is not allowed: keys are non-empty and contain "
            "neither '.' nor a leading '$'",
            field="header.metadata",
        )
    return key


def _normalise_value(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, Mapping):
        return normalise_metadata(value)
    if isinstance(value, list):
        return [_normalise_value(item) for item in value]
    return value


@dataclass(frozen=True)
class Digest:
    """What the bytes of an upload turned out to be."""

    sha256: str
    md5: str
    length: int


@dataclass
class ContentDigest:
    """Running hashes and size of an upload, enforcing the size limit as bytes arrive.

    The limit is checked per piece, before the piece is stored, so an
    oversized upload is refused without writing past the limit.
    """

    max_bytes: int
    length: int = 0
    _sha256: Any = field(default_factory=hashlib.sha256)
    _md5: Any = field(default_factory=lambda: hashlib.md5(usedforsecurity=False))

    def update(self, data: bytes) -> None:
        if self.length + len(data) > self.max_bytes:
            raise errors.TooLarge(f"the file is larger than the limit of {self.max_bytes} bytes")
        self.length += len(data)
        self._sha256.update(data)
        self._md5.update(data)

    def finish(self, header: UploadHeader) -> Digest:
        """The digest, or INVALID_ARGUMENT when the bytes are not what the header promised."""
        digest = Digest(
            sha256=self._sha256.hexdigest(), md5=self._md5.hexdigest(), length=self.length
        )
        if header.expected_length is not None and digest.length != header.expected_length:
            raise errors.InvalidArgument(
                f"expected {header.expected_length} bytes, received {digest.length}",
                field="header.expected_length",
            )
        if header.expected_sha256 is not None and digest.sha256 != header.expected_sha256:
            raise errors.InvalidArgument(
                f"the content's SHA-256 is {digest.sha256}, not the expected "
                f"{header.expected_sha256}; nothing was stored",
                field="header.expected_sha256",
            )
        return digest


def stored_metadata(header: UploadHeader, digest: Digest) -> dict[str, Any]:
    """The ``metadata`` of a new GridFS files document."""
    return {
        **header.metadata,
        "content_type": header.content_type,
        "hash": digest.md5,
        "sha256": digest.sha256,
    }


@dataclass(frozen=True)
class VerifiedUpload:
    """An upload whose bytes all arrived as its header promised: what a store commits.

    ``metadata`` is the new files document's (:func:`stored_metadata`).
    """

    filename: str
    metadata: Mapping[str, Any]
    digest: Digest

    @property
    def output(self) -> OutputReference | None:
        """The output reference the upload records, None for a plain upload."""
        return output_reference(self.metadata, filename=self.filename)


@dataclass(frozen=True)
class UploadOutcome:
    """The stored file an upload resulted in, and whether it existed already."""

    record: FileRecord
    deduplicated: bool


@dataclass(frozen=True)
class OutputReference:
    """A replica's output that an upload recorded: never deleted while it exists.

    ``filename`` and ``labels`` are what that upload asked to be stored as
    (its own name and stored metadata, not the first uploader's): a listing
    by service or replica shows them (:func:`output_row`). They are not part
    of the reference's identity.
    """

    service_id: str
    replica_index: int
    path: str
    run: str
    filename: str = field(default="", compare=False)
    labels: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def reference_id(self, file_id: str) -> str:
        """The same for every upload of this output, so recording it again adds nothing."""
        text = json.dumps([file_id, self.service_id, self.replica_index, self.run, self.path])
        return "output:" + hashlib.sha256(text.encode()).hexdigest()


#: Metadata keys that make an upload a replica's output, or find it as one
#: (``ListFiles`` by service and replica): only the operator may write them.
OUTPUT_LABELS = ("service_id", "replica_index")


def output_labels(metadata: Mapping[str, Any]) -> list[str]:
    """The output labels ``metadata`` carries, whatever their values."""
    return [key for key in OUTPUT_LABELS if key in metadata]


def output_reference(
    metadata: Mapping[str, Any], *, filename: str = "", keep_labels: bool = True
) -> OutputReference | None:
    """The output reference an upload's metadata makes, None for a plain upload.

    The operator's collector labels every replica output with ``service_id``
    and ``replica_index`` (and ``path``, ``run``); those two make it an output.
    ``keep_labels`` False when ``metadata`` is a stored reference, not an upload's.
    """
    service_id = metadata.get("service_id")
    index = metadata.get("replica_index")
    if not isinstance(service_id, str) or not service_id:
        return None
    if isinstance(index, bool) or not isinstance(index, int):
        return None
    return OutputReference(
        service_id=service_id,
        replica_index=index,
        path=str(metadata.get("path") or ""),
        run=str(metadata.get("run") or ""),
        filename=filename,
        labels=dict(metadata) if keep_labels else {},
    )


def output_row(
    stored: FileRecord,
    *,
    row: int,
    output: OutputReference,
    recorded_at: datetime.datetime,
) -> FileRecord:
    """One recorded output as a row of a listing by service or replica.

    Identical content is stored once, so the stored file's name and metadata
    are its first uploader's; the row shows this output's own: the file id
    (shared), the upload's file name and stored metadata (``service_id``,
    ``replica_index``, ``path``, ``run``, ``content_type``...), and the moment
    this output was recorded as its upload date (for a file's first upload,
    exactly the file's ``uploadDate``). Length and checksums are the
    content's, the same for every row of one file. A reference recorded
    before references kept the upload's name and labels shows the stored
    file's, with its own service, replica, path and run put over them.
    """
    labels = dict(output.labels)
    if not labels:
        labels = {
            **stored.metadata,
            "service_id": output.service_id,
            "replica_index": output.replica_index,
        }
        labels.update({k: v for k, v in (("path", output.path), ("run", output.run)) if v})
    return FileRecord(
        file_id=stored.file_id,
        filename=output.filename or stored.filename,
        length=stored.length,
        upload_date=recorded_at,
        metadata=labels,
        chunk_size=stored.chunk_size,
        row=row,
    )


@dataclass(frozen=True)
class References:
    """Who holds a stored file: uploads answered with its id, and recorded outputs.

    ``uploads`` are the ids of the upload references (one is removed per
    delete). ``generation`` is the file's position in its sequence of
    changes (new references, announced mounts, the delete): a delete that
    decided on an older generation cannot complete.
    """

    uploads: tuple[str, ...]
    outputs: tuple[OutputReference, ...]
    generation: int

    @property
    def output_service_ids(self) -> list[str]:
        return sorted({ref.service_id for ref in self.outputs})


#: What a delete does, decided from a file's references (see :func:`plan_delete`).
DROP_UPLOAD = "drop_upload"
DELETE_FILE = "delete_file"
REFUSE_OUTPUT = "refuse_output"


def plan_delete(references: References) -> str:
    """Remove one upload reference while others hold the file, delete the file with
    its last upload reference, refuse when only recorded outputs hold it."""
    uploads = len(references.uploads)
    if uploads > 1 or (uploads == 1 and references.outputs):
        return DROP_UPLOAD
    if references.outputs:
        return REFUSE_OUTPUT
    return DELETE_FILE


def kept_message(file_id: str, after: References) -> str:
    """What a delete that removed one reference but kept the file answers."""
    holders = []
    uploads = len(after.uploads)
    if uploads:
        holders.append(f"{uploads} other upload{'s' if uploads != 1 else ''}")
    if after.outputs:
        holders.append("recorded outputs of services " + ", ".join(after.output_service_ids))
    if not holders:  # a delete racing this one removed the last reference
        return (
            f"File {file_id}: one upload reference removed; a delete at the same moment "
            "removed the last one and deleted the file"
        )
    return f"File {file_id}: one upload reference removed; the file is kept for " + " and ".join(
        holders
    )


@dataclass(frozen=True)
class ByteRange:
    """The bytes ``[offset, offset + length)`` of a file."""

    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


def byte_range(*, size: int, offset: int, length: int) -> ByteRange:
    """The range a download asks for, clamped to the file's end.

    ``length`` 0 means "to the end". An offset equal to the size is an empty
    range (a finished download resumed); an offset past it is an error.
    """
    if offset < 0:
        raise errors.InvalidArgument("offset must not be negative", field="offset")
    if length < 0:
        raise errors.InvalidArgument("length must not be negative", field="length")
    if offset > size:
        raise errors.InvalidArgument(
            f"offset {offset} is beyond the end of the file ({size} bytes)", field="offset"
        )
    available = size - offset
    return ByteRange(offset=offset, length=available if length == 0 else min(length, available))


@dataclass(frozen=True)
class PagePosition:
    """Where the previous page ended, in the listing order (newest first).

    A listing by output (:attr:`FileFilter.by_output`) is numbered in the
    order its outputs were recorded, so its position is the number of the
    last row (:attr:`FileRecord.row`); one row per stored file is ordered by
    (upload date, file id).
    """

    upload_date: datetime.datetime
    file_id: str
    row: int | None = None


@dataclass(frozen=True)
class FileFilter:
    """Which files a listing shows."""

    service_id: str | None = None
    replica_index: int | None = None
    filename: str | None = None

    @property
    def by_output(self) -> bool:
        """A listing by service or replica: one row per recorded output (a file that
        several outputs hold is one row for each), read from the output references
        (:func:`output_row`), not from the stored file's first uploader's metadata."""
        return self.service_id is not None or self.replica_index is not None

    def fingerprint(self) -> str:
        """A short digest of the filter, kept in page tokens so that a token is
        only ever used with the filter it was made for."""
        text = json.dumps([self.service_id, self.replica_index, self.filename])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ListQuery:
    """A validated listing request."""

    filter: FileFilter
    limit: int
    skip: int = 0
    after: PagePosition | None = None


def parse_list_query(
    *,
    skip: int,
    limit: int | None,
    page_token: str,
    service_id: str,
    replica_index: int | None,
    filename: str,
) -> ListQuery:
    """Validate a listing request (skip/limit as the original, or a page token)."""
    if skip < 0:
        raise errors.InvalidArgument("skip must not be negative", field="skip")
    if limit is not None and limit < 1:
        raise errors.InvalidArgument(f"limit must be at least 1, got {limit}", field="limit")
    if limit is not None and limit > MAX_PAGE_SIZE:
        raise errors.InvalidArgument(f"limit must be at most {MAX_PAGE_SIZE}", field="limit")
    if replica_index is not None and replica_index < 0:
        raise errors.InvalidArgument("replica_index must not be negative", field="replica_index")
    file_filter = FileFilter(
        service_id=service_id or None, replica_index=replica_index, filename=filename or None
    )
    after = decode_page_token(page_token, file_filter) if page_token else None
    return ListQuery(
        filter=file_filter,
        limit=DEFAULT_PAGE_SIZE if limit is None else limit,
        skip=0 if after is not None else skip,
        after=after,
    )


def encode_page_token(position: PagePosition, file_filter: FileFilter) -> str:
    """An opaque token for the page after ``position`` (keyset pagination:
    stable while files are added or removed, unlike skip).

    The token names the filter it was made for (its fingerprint) and the key
    of its listing: the last row's date and file id, and for a listing by
    output its row number (``n``); :func:`decode_page_token` accepts it only
    with that same filter, so a token cannot continue another listing.
    """
    millis = _epoch_millis(position.upload_date)
    fields: dict[str, Any] = {"d": millis, "i": position.file_id}
    if file_filter.by_output:
        fields["n"] = position.row
    fields["f"] = file_filter.fingerprint()
    payload = json.dumps(fields, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_page_token(token: str, file_filter: FileFilter) -> PagePosition:
    """The position a token stands for, or INVALID_ARGUMENT."""
    invalid = errors.InvalidArgument(
        "page_token is not a token this service issued", field="page_token"
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
        millis = payload["d"]
        file_id = payload["i"]
        fingerprint = payload["f"]
        row = payload.get("n")
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise invalid from exc
    if not isinstance(millis, int) or not isinstance(file_id, str) or not _FILE_ID.match(file_id):
        raise invalid
    if fingerprint != file_filter.fingerprint() or (row is not None) != file_filter.by_output:
        raise errors.InvalidArgument(
            "page_token belongs to a listing with other filters", field="page_token"
        )
    if row is not None and (isinstance(row, bool) or not isinstance(row, int) or row < 1):
        raise invalid
    moment = _EPOCH + datetime.timedelta(milliseconds=millis)
    return PagePosition(upload_date=moment, file_id=file_id, row=row)


def _epoch_millis(moment: datetime.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    delta = moment - _EPOCH
    return delta // datetime.timedelta(milliseconds=1)


def _quote(text: str, limit: int = 40) -> str:
    shown = text if len(text) <= limit else text[:limit] + "..."
    return json.dumps(shown)
