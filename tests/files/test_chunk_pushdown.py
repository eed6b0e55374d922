"""Downloading a small file by id reads its chunks by ``_id``; a large one in one pass.

FerretDB 1.x on SQLite answers only ``{_id: <value>}`` from its index; the
GridFS query ``{files_id, n}`` decodes every chunk of every stored file (the
``files_id`` gap of ``test_ferretdb_support.py``), so a download cost grew
with all the bytes the platform ever stored (issue 18). The store names its
chunks (``<file id>:<n>``) and reads them by point reads. These tests run
the real store on the real FerretDB, catch every filter it sends with
pymongo's command monitoring and ask FerretDB's ``explain`` whether each was
pushed down (a large read, over ``NAMED_READ_MAX_CHUNKS`` chunks, is one
cursor instead: on SQLite each point read is a table scan, so one scan per
chunk of a 200 MiB file would cost minutes); they also check that other
GridFS writers' files (ObjectId chunk ids) are still served, and that GridFS
readers still read this store's files.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import gridfs
import pymongo
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from dtpoc_files import domain
from dtpoc_files.gridfs_store import NAMED_READ_MAX_CHUNKS, GridFSStore
from dtpoc_local.databases import drop_databases, unique_db_name

CHUNK = 64 * 1024


@dataclass
class ChunkQueries(monitoring.CommandListener):
    """Filters sent to the chunks collection while ``recording``."""

    recording: bool = False
    filters: list[dict[str, Any]] = field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        if not self.recording or event.command_name not in ("find", "delete"):
            return
        if command.get(event.command_name) != "fs.chunks":
            return
        if event.command_name == "find":
            self.filters.append(dict(command.get("filter", {})))
        else:
            self.filters += [dict(d["q"]) for d in command["deletes"]]

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


@pytest.fixture
def database(mongodb_uri: str) -> Iterator[str]:
    name = unique_db_name("chunks")
    yield name
    drop_databases(mongodb_uri, {name})


@contextlib.asynccontextmanager
async def open_store(mongodb_uri: str, database: str) -> AsyncIterator[tuple[GridFSStore, Any]]:
    queries = ChunkQueries()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongodb_uri, event_listeners=[queries], tz_aware=True
    )
    store = GridFSStore(client[database], bucket="fs", chunk_bytes=CHUNK, pending_stale_seconds=60)
    try:
        yield store, queries
    finally:
        await client.close()


async def _upload(store: GridFSStore, content: bytes) -> domain.FileRecord:
    upload = await store.begin_upload(filename="out.bin")
    for start in range(0, len(content), 50_000):
        await upload.write(content[start : start + 50_000])
    digest = domain.Digest(
        sha256=hashlib.sha256(content).hexdigest(),
        md5=hashlib.md5(content).hexdigest(),
        length=len(content),
    )
    outcome = await upload.commit(filename="out.bin", metadata={}, digest=digest)
    return outcome.record


async def _read(store: GridFSStore, record: domain.FileRecord, offset: int, length: int) -> bytes:
    pieces = [
        p
        async for p in store.read_range(
            record, domain.ByteRange(offset=offset, length=length), piece_bytes=10_000
        )
    ]
    return b"".join(pieces)


def _explained(mongodb_uri: str, database: str, query: dict[str, Any]) -> bool:
    with pymongo.MongoClient(mongodb_uri) as client:
        answer = client[database].command(
            {"explain": {"find": "fs.chunks", "filter": query}, "verbosity": "queryPlanner"}
        )
    return bool(answer.get("filterPushdown"))


async def test_download_by_id_reads_chunks_by_id(mongodb_uri: str, database: str) -> None:
    content = bytes(range(256)) * 1100  # 281,600 bytes: 5 chunks, the last partial
    async with open_store(mongodb_uri, database) as (store, queries):
        for i in range(3):  # other files' chunks in the collection, as on a platform in use
            await _upload(store, bytes([i]) * 200_000)
        record = await _upload(store, content)
        queries.recording = True
        whole = await _read(store, record, 0, len(content))
        middle = await _read(store, record, CHUNK + 7, 2 * CHUNK)
        queries.recording = False
        assert whole == content
        assert middle == content[CHUNK + 7 : 3 * CHUNK + 7]
        assert queries.filters, "the reads sent no chunk query"
        scans = [q for q in queries.filters if not _explained(mongodb_uri, database, q)]
        assert scans == []
    with pymongo.MongoClient(mongodb_uri) as client:
        # Any GridFS reader still reads what this store wrote.
        bucket = gridfs.GridFSBucket(client[database])
        assert bucket.open_download_stream(ObjectId(record.file_id)).read() == content


async def test_files_of_other_gridfs_writers_are_still_served(
    mongodb_uri: str, database: str
) -> None:
    content = b"written by another GridFS client " * 5000
    with pymongo.MongoClient(mongodb_uri) as client:
        bucket = gridfs.GridFSBucket(client[database], chunk_size_bytes=CHUNK)
        file_id = bucket.upload_from_stream("theirs.bin", content)
    async with open_store(mongodb_uri, database) as (store, _queries):
        record = await store.get(str(file_id))
        assert await _read(store, record, 0, len(content)) == content
        assert await _read(store, record, CHUNK - 3, 10) == content[CHUNK - 3 : CHUNK + 7]


async def test_a_large_read_is_one_cursor_not_one_query_per_chunk(
    mongodb_uri: str, database: str
) -> None:
    chunks = NAMED_READ_MAX_CHUNKS * 2 + 1
    content = bytes(range(256)) * (CHUNK * chunks // 256)
    async with open_store(mongodb_uri, database) as (store, queries):
        record = await _upload(store, content)
        queries.recording = True
        whole = await _read(store, record, 0, len(content))
        queries.recording = False
        assert whole == content
        # One query for the whole file (one more only if chunks came out of order).
        assert 1 <= len(queries.filters) <= 2, queries.filters
