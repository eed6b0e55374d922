"""What the real test server (FerretDB 1.24) supports of what the design could use.

These are minimal reproductions, kept as tests so that the reasons for the
design stay checkable: if one starts failing, FerretDB changed and the
design may be simplified (see the docstring of ``dtpoc_files.gridfs_store``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import gridfs
import pymongo
import pytest
from bson import ObjectId
from pymongo import errors

from dtpoc_local.databases import unique_db_name


@pytest.fixture
def db(mongo_client: pymongo.MongoClient[dict[str, Any]]) -> Any:
    name = unique_db_name("ferret")
    yield mongo_client[name]
    mongo_client.drop_database(name)


def is_ferretdb(client: pymongo.MongoClient[dict[str, Any]]) -> bool:
    return "ferretdbVersion" in client.server_info()


def test_gridfs_bucket_round_trip_works(db: Any) -> None:
    """The GridFS operations the service and other drivers rely on all work."""
    bucket = gridfs.GridFSBucket(db)
    file_id = bucket.upload_from_stream("x.bin", b"a" * 600_000, metadata={"k": 1})
    assert bucket.open_download_stream(file_id).read() == b"a" * 600_000
    assert [f.filename for f in bucket.find({"metadata.k": 1})] == ["x.bin"]
    bucket.delete(file_id)
    assert db["fs.chunks"].count_documents({}) == 0


def test_unique_indexes_and_ids_are_enforced(db: Any) -> None:
    """The sha256 claim (``_id`` = digest) and the chunk index rely on these."""
    db.claims.insert_one({"_id": "digest"})
    with pytest.raises(errors.DuplicateKeyError):
        db.claims.insert_one({"_id": "digest"})
    db.chunks.create_index([("files_id", 1), ("n", 1)], unique=True)
    db.chunks.insert_one({"files_id": 1, "n": 0})
    with pytest.raises(errors.DuplicateKeyError):
        db.chunks.insert_one({"files_id": 1, "n": 0})


def race(db: Any, call: Callable[[Any], Any], *, times: int) -> list[Any]:
    """``call(collection_db)`` from ``times`` clients released at the same moment."""
    client_options = db.client.options
    uri = f"mongodb://{db.client.address[0]}:{db.client.address[1]}"
    results: list[Any] = []
    start = threading.Barrier(times)

    def one() -> None:
        with pymongo.MongoClient(uri, tz_aware=client_options.codec_options.tz_aware) as client:
            start.wait()
            results.append(call(client[db.name]))

    threads = [threading.Thread(target=one) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_updates_of_one_document_lose_writes_on_ferretdb(
    db: Any, mongo_client: pymongo.MongoClient[dict[str, Any]]
) -> None:
    """FerretDB 1.24 (SQLite backend) runs ``update_one`` and
    ``find_one_and_update`` as a read, then a write of the whole document: 8
    concurrent ``$inc`` of one counter add less than 8, and 8 compare-and-set
    updates on the same value may all report success. Why file references
    and the delete's compare-and-set (``dtpoc_files.references``) use only
    unique inserts and deletes by ``_id``, which stay exact (below)."""
    if not is_ferretdb(mongo_client):
        pytest.skip("a FerretDB limitation; this server is not FerretDB")
    lost = False
    for _ in range(5):
        db.counter.replace_one({"_id": 1}, {"_id": 1, "n": 0}, upsert=True)
        race(db, lambda d: d.counter.update_one({"_id": 1}, {"$inc": {"n": 1}}), times=8)
        if db.counter.find_one({"_id": 1})["n"] < 8:
            lost = True
            break
    assert lost, "every concurrent increment arrived: FerretDB may make updates atomic now"

    db.once.insert_one({"_id": 1})
    deleted = race(db, lambda d: d.once.delete_one({"_id": 1}).deleted_count, times=8)
    assert sorted(deleted) == [0] * 7 + [1], "exactly one delete by _id wins"

    def insert(d: Any) -> bool:
        try:
            d.claims.insert_one({"_id": "step-1"})
        except errors.DuplicateKeyError:
            return False
        return True

    assert sorted(race(db, insert, times=8)) == [False] * 7 + [True], "one unique insert wins"


def test_partial_unique_index_is_not_implemented(
    db: Any, mongo_client: pymongo.MongoClient[dict[str, Any]]
) -> None:
    """Why dedup claims live in a side collection and not in a partial unique
    index on ``metadata.sha256`` (which legacy files without the field need)."""
    if not is_ferretdb(mongo_client):
        pytest.skip("a FerretDB limitation; this server is not FerretDB")
    with pytest.raises(errors.OperationFailure, match="partialFilterExpression"):
        db["fs.files"].create_index(
            [("metadata.sha256", 1)],
            unique=True,
            partialFilterExpression={"metadata.sha256": {"$exists": True}},
        )


def test_large_gridfs_downloads_break_on_ferretdb(
    db: Any, mongo_client: pymongo.MongoClient[dict[str, Any]]
) -> None:
    """FerretDB 1.24 answers a ``getMore`` without ``batchSize`` with up to 250
    documents whatever their size, ignoring the 16 MiB batch cap of MongoDB.
    With 255 KiB GridFS chunks that reply outgrows the 48 MB wire message limit,
    so ``GridFSBucket`` (whose chunk cursor sets no batch size) cannot download
    a file of more than about 71 MiB. The service reads chunks with a batch
    size of its own (``gridfs_store.READ_BATCH_CHUNKS``) and is not affected.
    """
    if not is_ferretdb(mongo_client):
        pytest.skip("a FerretDB limitation; this server is not FerretDB")
    chunk = b"x" * (255 * 1024)
    db.big.insert_many([{"n": n, "data": chunk} for n in range(300)])
    with pytest.raises(errors.ProtocolError, match="larger than server max message size"):
        for _ in db.big.find():
            pass
    assert sum(1 for _ in db.big.find(batch_size=16)) == 300, "a batch size avoids it"

    bucket = gridfs.GridFSBucket(db)
    file_id = bucket.upload_from_stream("big.bin", chunk * 300)
    with pytest.raises(errors.ProtocolError, match="larger than server max message size"):
        bucket.open_download_stream(file_id).read()


def test_chunk_lookups_are_not_pushed_down_on_ferretdb(
    db: Any, mongo_client: pymongo.MongoClient[dict[str, Any]]
) -> None:
    """FerretDB 1.24 (SQLite backend) does not push a ``files_id`` filter down to
    SQL even with the GridFS index in place: every download scans every chunk
    of the bucket, so download speed on FerretDB falls as the bucket grows
    (MongoDB uses the ``{files_id: 1, n: 1}`` index). Why bench/files.py gives
    each way a bucket of its own."""
    if not is_ferretdb(mongo_client):
        pytest.skip("a FerretDB limitation; this server is not FerretDB")
    chunks = db["fs.chunks"]
    chunks.create_index([("files_id", 1), ("n", 1)], unique=True)
    file_id = ObjectId()
    chunks.insert_many([{"files_id": file_id, "n": n, "data": b"x"} for n in range(3)])
    plan = db.command("explain", {"find": "fs.chunks", "filter": {"files_id": file_id}})
    assert plan["filterPushdown"] is False
