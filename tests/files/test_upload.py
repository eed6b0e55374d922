"""Uploads: what a client sees, and what the database holds afterwards."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import gridfs
import grpc
from bson import ObjectId
from pymongo.database import Database

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc_local.servers.files import FilesServer
from tests.files import helpers

MIB = helpers.MIB


def counts(db: Database[dict[str, Any]]) -> dict[str, int]:
    """Documents in every collection of the bucket, visible or not."""
    return {
        name: db[name].count_documents({})
        for name in ("fs.files", "fs.chunks", "fs.pending_uploads", "fs.sha256")
    }


def test_upload_answers_the_record_and_keeps_hashes_and_labels(
    operator_files: files_pb2_grpc.FilesServiceStub, files_db: Database[dict[str, Any]]
) -> None:
    data = helpers.unique_bytes(3 * MIB + 17)
    response = helpers.upload(
        operator_files,
        data,
        "report.xlsx",
        content_type="application/vnd.ms-excel",
        metadata={"service_id": "svc-1", "replica_index": 2, "path": "out/report.xlsx"},
    )

    assert not response.deduplicated and response.message == ""
    assert response.filename == "report.xlsx"
    info = response.file
    assert info.file_id == response.file_id and info.length == len(data)
    assert info.sha256 == helpers.sha256(data)
    assert info.content_type == "application/vnd.ms-excel"
    assert info.metadata["replica_index"] == 2
    stored = files_db["fs.files"].find_one()
    assert stored is not None
    assert stored["metadata"]["replica_index"] == 2
    assert isinstance(stored["metadata"]["replica_index"], int), "integral labels stay integers"
    assert stored["metadata"]["hash"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert stored["metadata"]["sha256"] == helpers.sha256(data)
    assert counts(files_db) == {
        "fs.files": 1,
        "fs.chunks": -(-len(data) // stored["chunkSize"]),
        "fs.pending_uploads": 0,
        "fs.sha256": 1,
    }


def test_identical_content_answers_the_existing_file_and_stores_nothing_more(
    files: files_pb2_grpc.FilesServiceStub, files_db: Database[dict[str, Any]]
) -> None:
    data = helpers.unique_bytes(2 * MIB)
    first = helpers.upload(files, data, "a.bin")
    before = counts(files_db)

    second = helpers.upload(files, data, "b.bin")

    assert second.file_id == first.file_id
    assert second.deduplicated and second.message == "File already exists"
    assert second.filename == "a.bin", "the existing file's name is answered"
    assert counts(files_db) == before


def test_concurrent_identical_uploads_make_one_visible_file(
    files_server: FilesServer, files_db: Database[dict[str, Any]]
) -> None:
    data = helpers.unique_bytes(3 * MIB)
    responses: list[files_pb2.UploadFileResponse] = []
    failures: list[BaseException] = []
    barrier = threading.Barrier(4)

    def upload_one(index: int) -> None:
        with helpers.channel(files_server.address) as channel:
            client = files_pb2_grpc.FilesServiceStub(channel)
            barrier.wait(timeout=30)
            try:
                responses.append(helpers.upload(client, data, f"copy-{index}.bin"))
            except grpc.RpcError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=upload_one, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert not failures
    assert len({r.file_id for r in responses}) == 1
    assert sorted(r.deduplicated for r in responses) == [False, True, True, True]
    stored = files_db["fs.files"].find_one()
    assert stored is not None
    assert counts(files_db) == {
        "fs.files": 1,
        "fs.chunks": -(-len(data) // stored["chunkSize"]),
        "fs.pending_uploads": 0,
        "fs.sha256": 1,
    }


def test_wrong_expected_sha256_stores_nothing(
    files: files_pb2_grpc.FilesServiceStub, files_db: Database[dict[str, Any]]
) -> None:
    data = helpers.unique_bytes(2 * MIB)
    error = helpers.rpc_error(
        files.UploadFile,
        helpers.requests(helpers.header(expected_sha256="0" * 64), helpers.pieces_of(data)),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "SHA-256" in error.details() and "nothing was stored" in error.details()
    assert counts(files_db) == {
        "fs.files": 0,
        "fs.chunks": 0,
        "fs.pending_uploads": 0,
        "fs.sha256": 0,
    }


def test_right_expected_sha256_and_length_are_accepted(
    files: files_pb2_grpc.FilesServiceStub,
) -> None:
    data = helpers.unique_bytes(MIB)
    response = helpers.upload(
        files, data, expected_sha256=helpers.sha256(data).upper(), expected_length=len(data)
    )
    assert response.file.sha256 == helpers.sha256(data)


def test_stream_shorter_than_expected_length_stores_nothing(
    files: files_pb2_grpc.FilesServiceStub, files_db: Database[dict[str, Any]]
) -> None:
    data = helpers.unique_bytes(MIB)
    error = helpers.rpc_error(
        files.UploadFile,
        helpers.requests(helpers.header(expected_length=len(data) + 1), [data]),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "expected_length" in error.details()
    assert counts(files_db)["fs.chunks"] == 0


def test_upload_over_the_limit_is_refused_and_leaves_nothing(
    files_server_factory: Any, mongo_client: Any
) -> None:
    server = files_server_factory(DTPOC_FILES_MAX_UPLOAD_BYTES=str(2 * MIB))
    db = mongo_client[server.database]
    with helpers.channel(server.address) as channel:
        client = files_pb2_grpc.FilesServiceStub(channel)
        error = helpers.rpc_error(
            client.UploadFile,
            helpers.requests(helpers.header(), helpers.pieces_of(helpers.unique_bytes(3 * MIB))),
        )
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit" in error.details()

        announced = helpers.rpc_error(
            client.UploadFile,
            helpers.requests(helpers.header(expected_length=3 * MIB), []),
        )
        assert announced.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        exactly = helpers.upload(client, helpers.unique_bytes(2 * MIB))
        assert exactly.file.length == 2 * MIB
    assert counts(db)["fs.files"] == 1
    assert counts(db)["fs.chunks"] == -(-2 * MIB // (255 * 1024))


def test_malformed_upload_streams_are_invalid_arguments(
    files: files_pb2_grpc.FilesServiceStub, files_db: Database[dict[str, Any]]
) -> None:
    chunk_first = [files_pb2.UploadFileRequest(chunk=b"abc")]
    two_headers = [
        files_pb2.UploadFileRequest(header=helpers.header()),
        files_pb2.UploadFileRequest(chunk=b"abc"),
        files_pb2.UploadFileRequest(header=helpers.header()),
    ]
    after_finish = [
        files_pb2.UploadFileRequest(header=helpers.header()),
        files_pb2.UploadFileRequest(finish=True),
        files_pb2.UploadFileRequest(chunk=b"abc"),
    ]
    cases: dict[str, Any] = {
        "empty stream": iter([]),
        "chunk after finish": iter(after_finish),
        "chunk first": iter(chunk_first),
        "two headers": iter(two_headers),
        "no name": helpers.requests(helpers.header(""), [b"x"]),
        "folder in name": helpers.requests(helpers.header("../etc/passwd"), [b"x"]),
        "reserved key": helpers.requests(helpers.header(metadata={"sha256": "x"}), [b"x"]),
        "dotted key": helpers.requests(helpers.header(metadata={"a.b": 1}), [b"x"]),
        "bad digest": helpers.requests(helpers.header(expected_sha256="xyz"), [b"x"]),
    }
    for name, stream in cases.items():
        error = helpers.rpc_error(files.UploadFile, stream)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert "Traceback" not in error.details(), name
    assert counts(files_db)["fs.files"] == 0
    assert counts(files_db)["fs.chunks"] == 0


def test_empty_file_round_trips(files: files_pb2_grpc.FilesServiceStub) -> None:
    response = helpers.upload(files, b"", "empty.txt")
    assert response.file.length == 0
    assert helpers.download(files, response.file_id).data == b""


def test_files_are_plain_gridfs_for_other_drivers(
    files: files_pb2_grpc.FilesServiceStub, files_db: Database[dict[str, Any]]
) -> None:
    """Mongo Express, the original service and any driver read and write the same bucket."""
    ours = helpers.unique_bytes(MIB + 5)
    uploaded = helpers.upload(files, ours, "ours.bin")
    bucket = gridfs.GridFSBucket(files_db)
    assert bucket.open_download_stream(ObjectId(uploaded.file_id)).read() == ours

    theirs = helpers.unique_bytes(MIB // 3)
    legacy_id = bucket.upload_from_stream("legacy.xlsx", theirs, metadata={"hash": "md5-of-old"})
    downloaded = helpers.download(files, str(legacy_id))
    assert downloaded.data == theirs
    assert downloaded.info.filename == "legacy.xlsx"
    assert downloaded.info.sha256 == "", "files stored elsewhere have no sha256 until re-uploaded"
    assert downloaded.info.content_type == "application/octet-stream"


def test_stream_ending_without_finish_stores_nothing(
    files: files_pb2_grpc.FilesServiceStub, files_db: Database[dict[str, Any]]
) -> None:
    """A half-closed stream without ``finish`` looks like a client that went away."""
    before = counts(files_db)
    unfinished = [
        files_pb2.UploadFileRequest(header=helpers.header("half.bin")),
        files_pb2.UploadFileRequest(chunk=b"x" * MIB),
    ]
    error = helpers.rpc_error(files.UploadFile, iter(unfinished))
    assert error.code() == grpc.StatusCode.ABORTED
    assert "finish" in (error.details() or "")
    assert counts(files_db) == before
