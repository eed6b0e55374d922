"""Listing by service or replica at the use-case level, on the fake store
(``dtpoc_files.memory``, which passes the GridFS contract tests): every recorded
output is a row of its own, deduplicated or not, and page tokens walk them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from dtpoc_common import errors
from dtpoc_files import domain, memory, service

SERVICE_A = "aaaaaaaaaaaaaaaaaaaaaaaa"
SERVICE_B = "bbbbbbbbbbbbbbbbbbbbbbbb"


def files_service() -> service.FilesService:
    return service.FilesService(
        memory.InMemoryFileStore(chunk_bytes=64),
        memory.InMemoryFileUsage(),
        max_upload_bytes=1 << 20,
        download_piece_bytes=64,
    )


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def store_output(
    files: service.FilesService, data: bytes, *, filename: str, **labels: Any
) -> str:
    header = domain.parse_upload_header(
        filename=filename,
        content_type="",
        metadata=labels,
        expected_sha256="",
        expected_length=None,
        max_bytes=files.max_upload_bytes,
    )
    return (await files.upload(header, _pieces(data))).record.file_id


def listing(
    *, service_id: str = "", replica_index: int | None = None, token: str = "", limit: int = 100
) -> domain.ListQuery:
    return domain.parse_list_query(
        skip=0,
        limit=limit,
        page_token=token,
        service_id=service_id,
        replica_index=replica_index,
        filename="",
    )


async def test_each_service_lists_its_own_copy_of_identical_output() -> None:
    files = files_service()
    first = await store_output(
        files, b"", filename="a.log", service_id=SERVICE_A, replica_index=0, run="r1"
    )
    second = await store_output(
        files, b"", filename="b.log", service_id=SERVICE_B, replica_index=4, run="r2"
    )
    assert first == second
    page = await files.list(listing(service_id=SERVICE_B))
    assert [(r.file_id, r.filename, r.metadata["replica_index"]) for r in page.records] == [
        (first, "b.log", 4)
    ]
    assert [r.filename for r in (await files.list(listing(replica_index=0))).records] == ["a.log"]
    everything = await files.list(listing())
    assert [(r.file_id, r.filename) for r in everything.records] == [(first, "a.log")]


async def test_page_tokens_walk_deduplicated_rows_and_stay_with_their_filter() -> None:
    files = files_service()
    for n in range(5):
        await store_output(
            files, b"same", filename=f"{n}.json", service_id=SERVICE_A, replica_index=n
        )
    seen: list[str] = []
    page = await files.list(listing(service_id=SERVICE_A, limit=2))
    while True:
        seen += [r.filename for r in page.records]
        if not page.next_page_token:
            break
        page = await files.list(listing(service_id=SERVICE_A, limit=2, token=page.next_page_token))
    assert seen == ["4.json", "3.json", "2.json", "1.json", "0.json"]
    token = (await files.list(listing(service_id=SERVICE_A, limit=2))).next_page_token
    with pytest.raises(errors.InvalidArgument, match="other filters"):
        listing(service_id=SERVICE_B, token=token)
    with pytest.raises(errors.InvalidArgument, match="other filters"):
        listing(token=token)
