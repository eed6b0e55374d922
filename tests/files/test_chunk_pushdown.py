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
from typing import Any

import gridfs
import pymongo
from bson import ObjectId

from dtpoc_files import domain
from dtpoc_files.gridfs_store import NAMED_READ_MAX_CHUNKS, GridFSStore
from tests.files import stores
from tests.realdeps.pushdown import SentFilters, not_pushed_down, recorded_gridfs_store

CHUNK = 64 * 1024


def open_store(
    mongodb_uri: str, database: str
) -> contextlib.AbstractAsyncContextManager[tuple[GridFSStore, SentFilters]]:
    return recorded_gridfs_store(mongodb_uri, database, chunk_bytes=CHUNK)


async def _upload(store: GridFSStore, content: bytes) -> domain.FileRecord:
    outcome = await stores.store_bytes(store, content, filename="out.bin", piece_bytes=50_000)
    return outcome.record


async def _read(store: GridFSStore, record: domain.FileRecord, offset: int, length: int) -> bytes:
    pieces = [
        p
        async for p in store.read_range(
            record, domain.ByteRange(offset=offset, length=length), piece_bytes=10_000
        )
    ]
    return b"".join(pieces)


async def test_download_by_id_reads_chunks_by_id(mongodb_uri: str, mongo_db_name: str) -> None:
    content = bytes(range(256)) * 1100  # 281,600 bytes: 5 chunks, the last partial
    async with open_store(mongodb_uri, mongo_db_name) as (store, queries):
        for i in range(3):  # other files' chunks in the collection, as on a platform in use
            await _upload(store, bytes([i]) * 200_000)
        record = await _upload(store, content)
        with queries.recorded():
            whole = await _read(store, record, 0, len(content))
            middle = await _read(store, record, CHUNK + 7, 2 * CHUNK)
        assert whole == content
        assert middle == content[CHUNK + 7 : 3 * CHUNK + 7]
        chunk_queries = [("fs.chunks", q) for q in queries.to("fs.chunks")]
        assert chunk_queries, "the reads sent no chunk query"
        assert not_pushed_down(mongodb_uri, mongo_db_name, chunk_queries) == []
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(mongodb_uri) as client:
        # Any GridFS reader still reads what this store wrote.
        bucket = gridfs.GridFSBucket(client[mongo_db_name])
        assert bucket.open_download_stream(ObjectId(record.file_id)).read() == content


async def test_files_of_other_gridfs_writers_are_still_served(
    mongodb_uri: str, mongo_db_name: str
) -> None:
    content = b"written by another GridFS client " * 5000
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(mongodb_uri) as client:
        bucket = gridfs.GridFSBucket(client[mongo_db_name], chunk_size_bytes=CHUNK)
        file_id = bucket.upload_from_stream("theirs.bin", content)
    async with open_store(mongodb_uri, mongo_db_name) as (store, _queries):
        record = await store.get(str(file_id))
        assert await _read(store, record, 0, len(content)) == content
        assert await _read(store, record, CHUNK - 3, 10) == content[CHUNK - 3 : CHUNK + 7]


async def test_a_large_read_is_one_cursor_not_one_query_per_chunk(
    mongodb_uri: str, mongo_db_name: str
) -> None:
    chunks = NAMED_READ_MAX_CHUNKS * 2 + 1
    content = bytes(range(256)) * (CHUNK * chunks // 256)
    async with open_store(mongodb_uri, mongo_db_name) as (store, queries):
        record = await _upload(store, content)
        with queries.recorded():
            whole = await _read(store, record, 0, len(content))
        assert whole == content
        # One query for the whole file (one more only if chunks came out of order).
        assert 1 <= len(queries.to("fs.chunks")) <= 2, queries.sent
