"""Listing by service or replica shows every recorded output, deduplicated or not.

Identical content is stored once: when replicas of two services (or two
replicas, or two runs) write byte-identical files, or the same empty log, the
second upload is answered the first one's file id and only adds an output
reference. ``ListFiles(service_id=...)`` used to filter the stored file's
metadata, which is the first uploader's, so the second service's output was
missing from its own listing (while its ``/service/{id}/outputs`` had it).
These tests run a real ``dtpoc-files`` on FerretDB; the last one runs the
store itself and asks FerretDB's ``explain`` that every filter the listing
sends is pushed down.
"""

from __future__ import annotations

from typing import Any

import gridfs
import grpc
import pymongo
from bson import ObjectId
from pymongo.database import Database

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc_files import domain
from dtpoc_files.gridfs_store import GridFSStore
from tests.files import helpers, stores
from tests.realdeps.pushdown import not_pushed_down, recorded_gridfs_store


def output(
    operator: files_pb2_grpc.FilesServiceStub,
    content: bytes,
    *,
    service_id: str,
    replica: int,
    path: str,
    run: str = "run-1",
    **extra: Any,
) -> str:
    """Store a replica's output as the operator's collector does; answer its file id."""
    metadata = {
        "service_id": service_id,
        "replica_index": replica,
        "path": path,
        "run": run,
        **extra,
    }
    response = helpers.upload(operator, content, path.rsplit("/", 1)[-1], metadata=metadata)
    return response.file_id


def rows(files: files_pb2_grpc.FilesServiceStub, **fields: Any) -> list[tuple[Any, ...]]:
    """(file id, file name, replica, path, run) of every row, newest first."""
    answer = helpers.list_files(files, limit=1000, **fields)
    return [
        (
            info.file_id,
            info.filename,
            int(info.metadata["replica_index"]),
            info.metadata["path"],
            info.metadata["run"],
        )
        for info in answer.files
    ]


def test_services_with_identical_outputs_each_list_their_own(
    files: files_pb2_grpc.FilesServiceStub, operator_files: files_pb2_grpc.FilesServiceStub
) -> None:
    first, second = str(ObjectId()), str(ObjectId())
    content = helpers.unique_bytes(300)
    stored = output(operator_files, content, service_id=first, replica=0, path="out/kpi.json")
    again = output(
        operator_files, content, service_id=second, replica=3, path="b/totals.json", run="run-9"
    )
    assert again == stored, "identical content is stored once"

    assert rows(files, service_id=first) == [(stored, "kpi.json", 0, "out/kpi.json", "run-1")]
    assert rows(files, service_id=second) == [(stored, "totals.json", 3, "b/totals.json", "run-9")]
    (info,) = helpers.list_files(files, service_id=second).files
    assert (info.length, info.sha256) == (len(content), helpers.sha256(content))
    assert info.metadata["service_id"] == second
    # The first uploader's row is the stored file, exactly as the unfiltered listing has it.
    (row_of_first,) = helpers.list_files(files, service_id=first).files
    (as_stored,) = [f for f in helpers.list_files(files, limit=1000).files if f.file_id == stored]
    assert row_of_first == as_stored

    # The same empty log of a replica of each service (metadata kind: log, no path).
    logs = [
        helpers.upload(
            operator_files,
            b"",
            "replica-0.log",
            metadata={"service_id": s, "replica_index": 0, "run": "r", "kind": "log"},
        ).file_id
        for s in (first, second)
    ]
    assert logs[0] == logs[1]
    for service_id in (first, second):
        listed = helpers.list_files(files, service_id=service_id, limit=100).files
        assert [(f.file_id, f.metadata["kind"]) for f in listed if f.length == 0] == [
            (logs[0], "log")
        ]


def test_replica_filter_lists_each_replicas_own_deduplicated_output(
    files: files_pb2_grpc.FilesServiceStub, operator_files: files_pb2_grpc.FilesServiceStub
) -> None:
    service_id, other = str(ObjectId()), str(ObjectId())
    content = helpers.unique_bytes(120)
    ids = [
        output(operator_files, content, service_id=service_id, replica=n, path=f"r{n}/out.csv")
        for n in range(3)
    ]
    assert len(set(ids)) == 1
    output(operator_files, content, service_id=other, replica=1, path="x/out.csv")

    assert rows(files, service_id=service_id, replica_index=1) == [
        (ids[0], "out.csv", 1, "r1/out.csv", "run-1")
    ]
    assert [r[2:4] for r in rows(files, service_id=service_id)] == [
        (2, "r2/out.csv"),
        (1, "r1/out.csv"),
        (0, "r0/out.csv"),
    ]
    everyone_first_replica = rows(files, replica_index=1)
    assert [r[3] for r in everyone_first_replica if r[0] == ids[0]] == [
        "x/out.csv",
        "r1/out.csv",
    ]
    assert rows(files, service_id=service_id, replica_index=7) == []


def test_pages_walk_every_deduplicated_row_once_even_while_outputs_arrive(
    files: files_pb2_grpc.FilesServiceStub, operator_files: files_pb2_grpc.FilesServiceStub
) -> None:
    service_id = str(ObjectId())
    shared = helpers.unique_bytes(64)
    made = []  # (replica, path) in upload order: 8 outputs, 6 of them one stored file
    for n in range(8):
        content = shared if n % 3 != 2 else helpers.unique_bytes(64)
        output(operator_files, content, service_id=service_id, replica=n, path=f"p{n}.json")
        made.append((n, f"p{n}.json"))
    newest_first = list(reversed(made))
    assert [r[2:4] for r in rows(files, service_id=service_id)] == newest_first

    seen: list[tuple[int, str]] = []
    page = helpers.list_files(files, service_id=service_id, limit=3)
    pages = 1
    while True:
        seen += [(int(f.metadata["replica_index"]), f.metadata["path"]) for f in page.files]
        if pages == 1:
            # A new deduplicated output arrives mid-walk: it is newer than the
            # position, so no row repeats or goes missing on later pages.
            output(operator_files, shared, service_id=service_id, replica=8, path="late.json")
        if not page.next_page_token:
            break
        page = helpers.list_files(
            files, service_id=service_id, limit=3, page_token=page.next_page_token
        )
        pages += 1
    assert seen == newest_first
    assert pages == 3

    # skip/limit (the REST and CLI listing) counts rows, not stored files.
    listed = helpers.list_files(files, service_id=service_id, skip=2, limit=4).files
    assert [f.metadata["path"] for f in listed] == ["p6.json", "p5.json", "p4.json", "p3.json"]

    token = helpers.list_files(files, service_id=service_id, limit=2).next_page_token
    for other in ({"service_id": str(ObjectId())}, {"service_id": service_id, "replica_index": 0}):
        error = helpers.rpc_error(
            files.ListFiles, files_pb2.ListFilesRequest(page_token=token, **other)
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    unfiltered = helpers.list_files(files, limit=2).next_page_token
    error = helpers.rpc_error(
        files.ListFiles, files_pb2.ListFilesRequest(page_token=unfiltered, service_id=service_id)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_removed_reference_or_file_leaves_the_listing(
    files: files_pb2_grpc.FilesServiceStub,
    operator_files: files_pb2_grpc.FilesServiceStub,
    files_db: Database[dict[str, Any]],
) -> None:
    """References go with their file's deletion (``ReferenceBook.forget``), or with an
    upload discarded after it recorded one; a file whose delete was committed loses its
    files document first. Either way the row goes, and only that row."""
    service_id = str(ObjectId())
    shared = helpers.unique_bytes(80)
    stored = output(operator_files, shared, service_id=service_id, replica=0, path="a.json")
    output(operator_files, shared, service_id=service_id, replica=1, path="a.json")
    single = output(
        operator_files, helpers.unique_bytes(80), service_id=service_id, replica=2, path="b.json"
    )
    assert [r[2] for r in rows(files, service_id=service_id)] == [2, 1, 0]

    removed = files_db["fs.references"].delete_one(
        {"file_id": stored, "service_id": service_id, "replica_index": 1}
    )
    assert removed.deleted_count == 1
    assert [r[2] for r in rows(files, service_id=service_id)] == [2, 0]

    files_db["fs.files"].delete_one({"_id": ObjectId(single)})
    assert rows(files, service_id=service_id) == [(stored, "a.json", 0, "a.json", "run-1")]


async def test_a_listing_by_output_sends_only_pushed_down_filters(
    mongodb_uri: str, mongo_db_name: str
) -> None:
    async with recorded_gridfs_store(mongodb_uri, mongo_db_name, chunk_bytes=1024) as (store, sent):
        shared = b"the same small output"
        for service in ("s-a", "s-b", "s-c"):  # other services' outputs, deduplicated
            for replica in range(3):
                await _store_output(store, shared, service_id=service, replica=replica)
                await _store_output(
                    store, f"{service} {replica}".encode(), service_id=service, replica=replica
                )
        with sent.recorded():
            first, more = await store.list(
                domain.ListQuery(filter=domain.FileFilter(service_id="s-b"), limit=4)
            )
            last = first[-1]
            after = domain.PagePosition(
                upload_date=last.upload_date, file_id=last.file_id, row=last.row
            )
            rest, _ = await store.list(
                domain.ListQuery(filter=domain.FileFilter(service_id="s-b"), limit=4, after=after)
            )
            replica, _ = await store.list(
                domain.ListQuery(
                    filter=domain.FileFilter(service_id="s-b", replica_index=1), limit=10
                )
            )
        assert more and len(first) + len(rest) == 6
        assert {r.metadata["service_id"] for r in first + rest + replica} == {"s-b"}
        assert {r.metadata["replica_index"] for r in replica} == {1} and len(replica) == 2
        assert sent.to("fs.references"), "the listing read no references"
        assert not_pushed_down(mongodb_uri, mongo_db_name, sent.sent) == []


async def _store_output(
    store: GridFSStore, content: bytes, *, service_id: str, replica: int
) -> None:
    metadata = {"service_id": service_id, "replica_index": replica, "path": "out.json", "run": "r"}
    await stores.store_bytes(store, content, filename="out.json", metadata=metadata)


async def test_outputs_another_gridfs_writer_stored_are_listed_by_service(
    mongodb_uri: str, mongo_db_name: str
) -> None:
    """Files the original service wrote into the same bucket carry their labels only in
    their metadata: they are listed from start, and those written later from the next
    sweep on, each with its own labels."""
    labels = {"service_id": "s-old", "replica_index": 1, "path": "out/kpi.json", "run": "r"}
    with pymongo.MongoClient(mongodb_uri) as client:
        bucket = gridfs.GridFSBucket(client[mongo_db_name])
        before_start = bucket.upload_from_stream("kpi.json", b"old kpi", metadata=labels)
        async with recorded_gridfs_store(mongodb_uri, mongo_db_name, chunk_bytes=1024) as (
            store,
            _,
        ):
            await store.ensure_indexes()
            query = domain.ListQuery(filter=domain.FileFilter(service_id="s-old"), limit=10)
            (row,) = (await store.list(query))[0]
            assert (row.file_id, row.filename, row.metadata["path"]) == (
                str(before_start),
                "kpi.json",
                "out/kpi.json",
            )
            later = bucket.upload_from_stream(
                "b.json", b"later", metadata={**labels, "replica_index": 2}
            )
            await store.sweep_abandoned_uploads()
            rows, _ = await store.list(query)
            assert [(r.file_id, r.metadata["replica_index"]) for r in rows] == [
                (str(later), 2),
                (str(before_start), 1),
            ]
