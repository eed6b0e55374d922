"""Downloads (whole, ranged, resumed), file info, and the error codes a client gets."""

from __future__ import annotations

from typing import Any

import grpc
from bson import ObjectId
from pymongo.database import Database

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc_local import ports
from tests.files import helpers

MIB = helpers.MIB


def test_download_streams_info_then_bytes(files: files_pb2_grpc.FilesServiceStub) -> None:
    data = helpers.unique_bytes(5 * MIB + 123)
    uploaded = helpers.upload(files, data, "five.bin")

    downloaded = helpers.download(files, uploaded.file_id)

    assert downloaded.data == data
    assert downloaded.info.file_id == uploaded.file_id
    assert downloaded.info.filename == "five.bin"
    assert downloaded.info.length == len(data)
    assert downloaded.info.sha256 == helpers.sha256(data)


def test_byte_ranges_resume_a_download(files: files_pb2_grpc.FilesServiceStub) -> None:
    data = helpers.unique_bytes(2 * MIB + 999)
    file_id = helpers.upload(files, data).file_id
    chunk = 255 * 1024
    cases = [
        (0, 10),  # a prefix
        (chunk - 3, 10),  # across a chunk boundary
        (chunk, chunk),  # exactly one chunk
        (MIB + 7, 0),  # resume: from an offset to the end
        (len(data) - 5, 100),  # a length past the end is cut at the end
        (len(data), 0),  # resuming a finished download: nothing left
        (123, MIB + 1),  # longer than one message
    ]
    for offset, length in cases:
        got = helpers.download(files, file_id, offset=offset, length=length).data
        end = len(data) if length == 0 else min(len(data), offset + length)
        assert got == data[offset:end], (offset, length)

    resumed = helpers.download(files, file_id, offset=0, length=MIB).data
    resumed += helpers.download(files, file_id, offset=len(resumed)).data
    assert resumed == data


def test_offset_beyond_the_end_is_refused(files: files_pb2_grpc.FilesServiceStub) -> None:
    file_id = helpers.upload(files, helpers.unique_bytes(1000)).file_id
    error = helpers.rpc_error(files.GetFile, files_pb2.GetFileRequest(file_id=file_id, offset=1001))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "beyond the end" in error.details() and "1000 bytes" in error.details()

    negative = helpers.rpc_error(
        files.GetFile, files_pb2.GetFileRequest(file_id=file_id, offset=-1)
    )
    assert negative.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_file_info_without_bytes(files: files_pb2_grpc.FilesServiceStub) -> None:
    data = helpers.unique_bytes(4096)
    uploaded = helpers.upload(files, data, "info.txt", content_type="text/plain")
    info = files.GetFileInfo(
        files_pb2.GetFileInfoRequest(file_id=uploaded.file_id), timeout=helpers.CALL_TIMEOUT
    ).file
    assert info == uploaded.file
    assert info.content_type == "text/plain"
    assert info.uploadDate.seconds > 0


def test_malformed_ids_are_invalid_arguments(files: files_pb2_grpc.FilesServiceStub) -> None:
    for bad in ["", "xyz", "669a4eee364a1b751c550b0", "669a4eee364a1b751c550b02zz", "../x"]:
        for call, request in [
            (files.GetFileInfo, files_pb2.GetFileInfoRequest(file_id=bad)),
            (files.GetFile, files_pb2.GetFileRequest(file_id=bad)),
            (files.DeleteFile, files_pb2.DeleteFileRequest(file_id=bad, force=True)),
        ]:
            error = helpers.rpc_error(call, request)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (bad, call)
            assert error.details().startswith("file_id: not a file id"), error.details()


def test_missing_files_are_not_found(files: files_pb2_grpc.FilesServiceStub) -> None:
    missing = "669a4eee364a1b751c550b02"
    for call, request in [
        (files.GetFileInfo, files_pb2.GetFileInfoRequest(file_id=missing)),
        (files.GetFile, files_pb2.GetFileRequest(file_id=missing)),
        (files.DeleteFile, files_pb2.DeleteFileRequest(file_id=missing, force=True)),
    ]:
        error = helpers.rpc_error(call, request)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert missing in error.details()


def test_unreachable_database_answers_unavailable(files_server_factory: Any) -> None:
    closed_port = ports.free_port()
    server = files_server_factory(
        DTPOC_MONGODB_URI=f"mongodb://127.0.0.1:{closed_port}/",
        DTPOC_MONGODB_TIMEOUT_MS="300",
    )
    some_id = "669a4eee364a1b751c550b02"
    with helpers.channel(server.address) as channel:
        client = files_pb2_grpc.FilesServiceStub(channel)
        calls: list[tuple[Any, Any]] = [
            (client.GetFileInfo, files_pb2.GetFileInfoRequest(file_id=some_id)),
            (client.GetFile, files_pb2.GetFileRequest(file_id=some_id)),
            (client.ListFiles, files_pb2.ListFilesRequest()),
            (client.DeleteFile, files_pb2.DeleteFileRequest(file_id=some_id, force=True)),
            (client.UploadFile, helpers.requests(helpers.header(), [b"abc"])),
        ]
        for call, request in calls:
            error = helpers.rpc_error(call, request)
            assert error.code() == grpc.StatusCode.UNAVAILABLE, call
            assert "database cannot be reached" in error.details()
            assert "Traceback" not in error.details()


def test_a_broken_file_answers_internal_without_details(
    files: files_pb2_grpc.FilesServiceStub, files_db: Database[dict[str, Any]]
) -> None:
    """A chunk lost behind the service's back is the server's problem: INTERNAL,
    and the client learns nothing of the server's insides."""
    uploaded = helpers.upload(files, helpers.unique_bytes(MIB))
    files_db["fs.chunks"].delete_one({"files_id": ObjectId(uploaded.file_id), "n": 2})

    error = helpers.rpc_error(files.GetFile, files_pb2.GetFileRequest(file_id=uploaded.file_id))
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == "internal error; the server log has the details"
