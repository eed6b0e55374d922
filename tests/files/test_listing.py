"""Listing files: newest first, skip/limit as the original, page tokens, filters."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from tests.files import helpers


@pytest.fixture
def uploaded(
    files: files_pb2_grpc.FilesServiceStub, operator_files: files_pb2_grpc.FilesServiceStub
) -> list[str]:
    """25 files, oldest first: 2 services x replicas (the operator's), some without labels."""
    ids = []
    for index in range(25):
        if index < 20:
            metadata = {"service_id": f"svc-{index % 2}", "replica_index": index % 4}
        else:
            metadata = {}
        response = helpers.upload(
            operator_files if metadata else files,
            helpers.unique_bytes(100 + index),
            f"out-{index % 5}.json",
            metadata=metadata,
        )
        ids.append(response.file_id)
    return ids


def ids_of(response: object) -> list[str]:
    return [info.file_id for info in response.files]  # type: ignore[attr-defined]


def test_newest_first_with_the_original_skip_and_limit(
    files: files_pb2_grpc.FilesServiceStub, uploaded: list[str]
) -> None:
    newest_first = list(reversed(uploaded))
    assert ids_of(helpers.list_files(files)) == newest_first[:10], "limit defaults to 10"
    assert ids_of(helpers.list_files(files, skip=5, limit=7)) == newest_first[5:12]
    assert ids_of(helpers.list_files(files, limit=1000)) == newest_first
    assert ids_of(helpers.list_files(files, skip=25)) == []


def test_page_tokens_walk_every_file_once_even_while_files_arrive(
    files: files_pb2_grpc.FilesServiceStub, uploaded: list[str]
) -> None:
    seen: list[str] = []
    page = helpers.list_files(files, limit=7)
    pages = 1
    while True:
        seen += ids_of(page)
        if pages == 2:
            # A new file arrives mid-walk: with skip it would shift every
            # later page by one; with tokens nothing repeats or goes missing.
            helpers.upload(files, helpers.unique_bytes(10), "late.json")
        if not page.next_page_token:
            break
        page = helpers.list_files(files, limit=7, page_token=page.next_page_token)
        pages += 1
    assert seen == list(reversed(uploaded))
    assert pages == 4


def test_page_tokens_skip_is_ignored_and_last_page_has_no_token(
    files: files_pb2_grpc.FilesServiceStub, uploaded: list[str]
) -> None:
    first = helpers.list_files(files, limit=20)
    second = helpers.list_files(files, limit=20, skip=3, page_token=first.next_page_token)
    assert ids_of(second) == list(reversed(uploaded))[20:]
    assert second.next_page_token == ""


def test_filters_by_service_replica_and_name(
    files: files_pb2_grpc.FilesServiceStub, uploaded: list[str]
) -> None:
    by_service = helpers.list_files(files, service_id="svc-1", limit=100)
    assert ids_of(by_service) == [uploaded[i] for i in reversed(range(20)) if i % 2 == 1]
    assert all(info.metadata["service_id"] == "svc-1" for info in by_service.files)
    assert len(by_service.files) == 10

    replica = helpers.list_files(files, service_id="svc-1", replica_index=3, limit=100)
    expected = [uploaded[i] for i in reversed(range(20)) if i % 2 == 1 and i % 4 == 3]
    assert ids_of(replica) == expected

    zero = helpers.list_files(files, replica_index=0, limit=100)
    assert ids_of(zero) == [uploaded[i] for i in reversed(range(20)) if i % 4 == 0]

    named = helpers.list_files(files, filename="out-2.json", limit=100)
    assert ids_of(named) == [uploaded[i] for i in reversed(range(25)) if i % 5 == 2]

    paged = helpers.list_files(files, service_id="svc-0", limit=4)
    rest = helpers.list_files(
        files, service_id="svc-0", limit=100, page_token=paged.next_page_token
    )
    assert ids_of(paged) + ids_of(rest) == [uploaded[i] for i in reversed(range(20)) if i % 2 == 0]

    assert ids_of(helpers.list_files(files, service_id="nobody")) == []


def test_bad_listing_requests_are_invalid_arguments(
    files: files_pb2_grpc.FilesServiceStub, uploaded: list[str]
) -> None:
    token = helpers.list_files(files, service_id="svc-0", limit=2).next_page_token
    cases: dict[str, dict[str, Any]] = {
        "limit over 1000": {"limit": 1001},
        "negative limit": {"limit": -1},
        "negative skip": {"skip": -1},
        "negative replica": {"replica_index": -1},
        "garbage token": {"page_token": "not a token!"},
        "forged token": {"page_token": "eyJkIjoxfQ"},
        "token of another filter": {"page_token": token, "service_id": "svc-1"},
    }
    for name, fields in cases.items():
        error = helpers.rpc_error(files.ListFiles, files_pb2.ListFilesRequest(**fields))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, name
