"""Fetch a replica's input files from the Files service: the init container's entrypoint.

``dtpoc-fetch-inputs`` runs in the operator's own image as the init container
of every replica that has input files (Kubernetes); the local runtime calls
:func:`fetch_inputs` with the same arguments before it starts a replica. It
replaces the original's ``curl`` from a hard-coded address.

Environment:

- ``DTPOC_FETCH_FILES_ADDRESS``: the Files service, ``host:port`` (required).
- ``DTPOC_FETCH_INPUTS``: JSON list of ``{"file_id": ..., "name": ...}``.
- ``DTPOC_FETCH_INPUT_DIR``: destination folder, ``/input`` by default.
- ``DTPOC_FETCH_TIMEOUT_SECONDS``: overall deadline, 300 by default; an
  unreachable Files service is retried until then (pods may start first).
- ``DTPOC_FETCH_TOKEN``: the fetch token the operator minted for this
  service (it reads exactly these inputs); unset: calls carry no token.

Each file is streamed with ``GetFile`` into a temporary file in the
destination folder, checked against the SHA-256 and length of its
``FileInfo``, then renamed into place, so a replica never sees a torn file.
Exit codes: 0 all fetched, 2 an input is missing or unusable (fix the
launch), 1 anything else (Files unreachable, checksum mismatch). The reason
goes to stderr and to the Kubernetes termination log, where the operator
reads it into the replica's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc_common import grpcclient, limits
from dtpoc_operator import layout

ENV_ADDRESS = "DTPOC_FETCH_FILES_ADDRESS"
ENV_INPUTS = "DTPOC_FETCH_INPUTS"
ENV_INPUT_DIR = "DTPOC_FETCH_INPUT_DIR"
ENV_TIMEOUT = "DTPOC_FETCH_TIMEOUT_SECONDS"
ENV_TOKEN = "DTPOC_FETCH_TOKEN"  # noqa: S105 - a variable name
TERMINATION_LOG = Path("/dev/termination-log")

EXIT_MISSING = 2
EXIT_FAILED = 1
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class FetchError(Exception):
    """An input could not be fetched; ``exit_code`` says whether retrying can help."""

    def __init__(self, message: str, *, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(frozen=True)
class InputFile:
    file_id: str
    name: str


def inputs_json(input_files: dict[str, str]) -> str:
    """The ``DTPOC_FETCH_INPUTS`` value for a spec's ``inputFiles`` (id -> name)."""
    return json.dumps(
        [{"file_id": fid, "name": name} for fid, name in sorted(input_files.items())],
        separators=(",", ":"),
    )


def parse_inputs(text: str) -> list[InputFile]:
    """Parse ``DTPOC_FETCH_INPUTS``; raises :class:`FetchError` (exit 2) when malformed."""
    try:
        raw = json.loads(text or "[]")
    except json.JSONDecodeError as error:
        raise FetchError(f"{ENV_INPUTS} is not JSON: {error}", exit_code=EXIT_MISSING) from None
    if not isinstance(raw, list):
        raise FetchError(f"{ENV_INPUTS} must be a JSON list", exit_code=EXIT_MISSING)
    result = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("file_id"), str):
            raise FetchError(
                f"{ENV_INPUTS} entries need a string file_id and name", exit_code=EXIT_MISSING
            )
        name = item.get("name")
        if not isinstance(name, str) or not layout.is_plain_file_name(name):
            raise FetchError(
                f"input name {name!r} is not a plain file name", exit_code=EXIT_MISSING
            )
        if len(name.encode()) > limits.MAX_INPUT_NAME_BYTES:
            raise FetchError(
                f"input name {name[:40]!r}... is longer than {limits.MAX_INPUT_NAME_BYTES} "
                "bytes (its temporary name would not fit the file system)",
                exit_code=EXIT_MISSING,
            )
        result.append(InputFile(file_id=item["file_id"], name=name))
    return result


async def fetch_inputs(
    stub: files_pb2_grpc.FilesServiceAsyncStub,
    inputs: Sequence[InputFile],
    dest: Path,
    *,
    timeout_seconds: float,
) -> list[Path]:
    """Fetch every input into ``dest``; returns the paths written (see module docs)."""
    await asyncio.to_thread(dest.mkdir, parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_seconds
    written = []
    for item in inputs:
        written.append(await _fetch_with_retry(stub, item, dest, deadline=deadline))
    return written


async def _fetch_with_retry(
    stub: files_pb2_grpc.FilesServiceAsyncStub, item: InputFile, dest: Path, *, deadline: float
) -> Path:
    delay = 0.2
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(f"gave up fetching input {item.name} ({item.file_id}): deadline")
        try:
            return await _fetch_one(stub, item, dest, seconds=remaining)
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if code == grpc.StatusCode.NOT_FOUND:
                raise FetchError(
                    f"input file {item.file_id} ({item.name}) does not exist in the Files "
                    "service: it was deleted or never uploaded",
                    exit_code=EXIT_MISSING,
                ) from None
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                raise FetchError(
                    f"input file id {item.file_id!r} ({item.name}) is invalid: {error.details()}",
                    exit_code=EXIT_MISSING,
                ) from None
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                raise FetchError(
                    f"the Files service refused input {item.name} ({item.file_id}): "
                    f"{code.name} {error.details()}",
                    exit_code=EXIT_MISSING,
                ) from None
            if code not in RETRYABLE or time.monotonic() + delay >= deadline:
                raise FetchError(
                    f"could not fetch input {item.name} ({item.file_id}): "
                    f"{code.name} {error.details()}"
                ) from None
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def _fetch_one(
    stub: files_pb2_grpc.FilesServiceAsyncStub, item: InputFile, dest: Path, *, seconds: float
) -> Path:
    target = dest / item.name
    partial = dest / limits.fetch_partial_name(
        item.name, uuid.uuid4().hex[: limits.FETCH_TOKEN_HEX]
    )
    digest = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    info: files_pb2.FileInfo | None = None
    try:
        with partial.open("wb") as out:
            call = stub.GetFile(files_pb2.GetFileRequest(file_id=item.file_id), timeout=seconds)
            async for message in call:
                if message.WhichOneof("payload") == "info":
                    info = message.info
                    continue
                out.write(message.chunk)
                digest.update(message.chunk)
                md5.update(message.chunk)
                size += len(message.chunk)
            out.flush()
            os.fsync(out.fileno())
        if info is None:
            raise FetchError(f"Files sent no file info for {item.file_id} ({item.name})")
        if size != info.length:
            raise FetchError(
                f"input {item.name} ({item.file_id}): got {size} bytes, expected {info.length}"
            )
        expected_md5 = (
            info.metadata.fields["hash"].string_value if ("hash" in info.metadata.fields) else ""
        )
        if info.sha256 and digest.hexdigest() != info.sha256:
            raise FetchError(
                f"input {item.name} ({item.file_id}): SHA-256 {digest.hexdigest()} does not "
                f"match the stored {info.sha256}"
            )
        if not info.sha256 and expected_md5 and md5.hexdigest() != expected_md5:
            raise FetchError(f"input {item.name} ({item.file_id}): MD5 does not match")
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return target


def _report(message: str) -> None:
    print(f"dtpoc-fetch-inputs: {message}", file=sys.stderr, flush=True)
    if TERMINATION_LOG.parent.is_dir():
        with contextlib.suppress(OSError):
            TERMINATION_LOG.write_text(message[:4000])


async def _main_async() -> int:
    address = os.environ.get(ENV_ADDRESS, "")
    if not address:
        raise FetchError(f"{ENV_ADDRESS} is not set", exit_code=EXIT_FAILED)
    inputs = parse_inputs(os.environ.get(ENV_INPUTS, "[]"))
    dest = Path(os.environ.get(ENV_INPUT_DIR, "/input"))
    try:
        timeout = float(os.environ.get(ENV_TIMEOUT, "300"))
    except ValueError:
        raise FetchError(f"{ENV_TIMEOUT} must be a number of seconds") from None
    channel = grpcclient.open_channel(address, token=os.environ.get(ENV_TOKEN) or None)
    try:
        stub = files_pb2_grpc.FilesServiceStub(channel)
        paths = await fetch_inputs(stub, inputs, dest, timeout_seconds=timeout)
    finally:
        await channel.close()
    for path in paths:
        print(f"dtpoc-fetch-inputs: fetched {path}", file=sys.stderr, flush=True)
    return 0


def main() -> None:
    """Console entry ``dtpoc-fetch-inputs``."""
    try:
        code = asyncio.run(_main_async())
    except FetchError as error:
        _report(error.message)
        code = error.exit_code
    sys.exit(code)


if __name__ == "__main__":
    main()
