"""Deduplicated uploads and new references cost point reads, not scans (issue 18).

Every replica's log of a quiet replica is the same (empty) content, so the
operator's uploads deduplicate onto one stored file and add a reference to
it each time. That path used to send ``{file_id}`` filters (the latest change
step, sorted by ``n``; the discarded upload's claim and references), which
FerretDB 1.x answers by decoding every document of the collection: each
upload cost O(all uploads ever stored), and the database's CPU per replica
grew with the number of services. These tests run the real store on the
real FerretDB, catch every filter it sends with pymongo's command monitoring
and ask FerretDB's ``explain`` whether each was pushed down; they also check
that the references are still exact (a delete still waits for the last one).
"""

from __future__ import annotations

import contextlib
from typing import Any

from dtpoc_files import domain
from dtpoc_files.gridfs_store import GridFSStore
from tests.files import stores
from tests.realdeps.pushdown import SentFilters, not_pushed_down, recorded_gridfs_store

CHUNK = 64 * 1024


def open_store(
    mongodb_uri: str, database: str
) -> contextlib.AbstractAsyncContextManager[tuple[GridFSStore, SentFilters]]:
    return recorded_gridfs_store(mongodb_uri, database, chunk_bytes=CHUNK)


async def _upload(
    store: GridFSStore, content: bytes, *, replica: int | None = None
) -> domain.UploadOutcome:
    metadata: dict[str, Any] = {}
    if replica is not None:
        metadata = {
            "service_id": "6b0000000000000000000001",
            "replica_index": replica,
            "path": "log",
            "run": "r",
        }
    return await stores.store_bytes(store, content, filename="log", metadata=metadata)


async def test_deduplicated_uploads_send_only_pushed_down_filters(
    mongodb_uri: str, mongo_db_name: str
) -> None:
    async with open_store(mongodb_uri, mongo_db_name) as (store, filters):
        for i in range(5):  # other files and their references, as on a platform in use
            await _upload(store, f"other {i}".encode(), replica=i)
        first = await _upload(store, b"", replica=0)
        second = await _upload(store, b"", replica=1)  # its first step is taken here
        assert second.deduplicated
        with filters.recorded():
            later = [await _upload(store, b"", replica=n) for n in range(2, 7)]
        assert all(o.deduplicated and o.record.file_id == first.record.file_id for o in later)
        assert filters.sent, "the uploads sent no filter"
        assert not_pushed_down(mongodb_uri, mongo_db_name, filters.sent) == []
        # The same few reads for each upload, however many steps the file has.
        step_reads = filters.to("fs.generations")
        assert len(step_reads) <= 3 * len(later), step_reads
        # Still exact: seven replicas' outputs hold the file, so it cannot be deleted.
        held = await store.references(first.record.file_id)
        assert len(held.outputs) == 7


async def test_the_latest_step_is_found_among_many(mongodb_uri: str, mongo_db_name: str) -> None:
    async with open_store(mongodb_uri, mongo_db_name) as (store, _filters):
        stored = await _upload(store, b"shared")
        for n in range(1, 12):  # 11 more references: steps 1 to 11
            await _upload(store, b"shared", replica=n)
    async with open_store(mongodb_uri, mongo_db_name) as (fresh, filters):  # nothing remembered
        with filters.recorded():
            held = await fresh.references(stored.record.file_id)
        assert held.generation == 11
        assert len(held.outputs) == 11 and len(held.uploads) == 1
        step_reads = filters.to("fs.generations")
        assert len(step_reads) <= 9, step_reads  # doubling and halving, not one per step
