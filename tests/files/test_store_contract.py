"""The file store port (:class:`dtpoc_files.ports.FileStore`): the same tests for GridFS on
FerretDB and its in-memory fake (``InMemoryFileStore``), so the use-case tests on the fake
(``tests/unit/files``) say what the service does on GridFS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from bson import ObjectId

from dtpoc_common import errors
from dtpoc_files import domain, gridfs_store, memory, ports
from dtpoc_local.databases import drop_databases, unique_db_name
from tests.files import stores

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHUNK = 8
SERVICE = "0123456789abcdef01234567"


@pytest.fixture(params=["gridfs", "memory"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ports.FileStore]:
    if request.param == "memory":
        yield memory.InMemoryFileStore(chunk_bytes=CHUNK)
        return
    mongodb_uri: str = request.getfixturevalue("mongodb_uri")
    database = unique_db_name("filestore")
    client = gridfs_store.open_client(mongodb_uri, timeout_ms=10_000)
    try:
        yield gridfs_store.GridFSStore(
            client[database], bucket="fs", chunk_bytes=CHUNK, pending_stale_seconds=60
        )
    finally:
        await client.close()
        drop_databases(mongodb_uri, {database})


async def upload(
    store: ports.FileStore,
    content: bytes,
    *,
    filename: str = "data.bin",
    metadata: dict[str, Any] | None = None,
) -> domain.UploadOutcome:
    """As the servicer stores an upload: its sha256 among the labels, in small pieces."""
    labels = {**(metadata or {}), "sha256": stores.digest_of(content).sha256}
    return await stores.store_bytes(
        store, content, filename=filename, metadata=labels, piece_bytes=5
    )


async def read(
    store: ports.FileStore, record: domain.FileRecord, offset: int, length: int
) -> bytes:
    byte_range = domain.ByteRange(offset=offset, length=length)
    return b"".join([p async for p in store.read_range(record, byte_range, piece_bytes=3)])


def everything(**filters: Any) -> domain.ListQuery:
    return domain.ListQuery(filter=domain.FileFilter(**filters), limit=100)


async def test_an_upload_is_visible_with_its_bytes_once_committed(store: ports.FileStore) -> None:
    content = b"0123456789" * 3 + b"tail"
    outcome = await upload(store, content, filename="in.xlsx", metadata={"team": "a"})
    assert not outcome.deduplicated
    got = await store.get(outcome.record.file_id)
    assert (got.filename, got.length, got.metadata["team"]) == ("in.xlsx", len(content), "a")
    assert await read(store, got, 0, len(content)) == content
    assert await read(store, got, 7, 12) == content[7:19]
    assert await read(store, got, len(content) - 1, 1) == b"l"


async def test_identical_content_is_stored_once_with_a_reference_per_upload(
    store: ports.FileStore,
) -> None:
    content = f"same {ObjectId()}".encode()
    first = await upload(store, content, filename="a.txt")
    second = await upload(store, content, filename="b.txt")
    assert second.deduplicated
    assert second.record.file_id == first.record.file_id
    held = await store.references(first.record.file_id)
    assert len(held.uploads) == 2 and held.outputs == ()
    records, more = await store.list(everything())
    assert [r.file_id for r in records] == [first.record.file_id] and not more


async def test_an_abandoned_or_discarded_upload_leaves_nothing(store: ports.FileStore) -> None:
    pending = await store.begin_upload(filename="gone.bin")
    await pending.write(b"abc")
    with pytest.raises(gridfs_store.UploadAbandoned):
        await pending.commit(
            domain.VerifiedUpload(
                filename="gone.bin", metadata={}, digest=stores.digest_of(b"abc")
            ),
            still_wanted=lambda: False,
        )
    await pending.discard()
    other = await store.begin_upload(filename="other.bin")
    await other.write(b"abcdefghijk")
    await other.discard()
    assert await store.list(everything()) == ([], False)
    outcome = await upload(store, b"abc")
    assert not outcome.deduplicated, "a discarded upload claims no content"


async def test_listing_is_newest_first_filtered_and_paged(store: ports.FileStore) -> None:
    made = [
        (await upload(store, f"n{n}".encode(), filename=f"f{n % 2}.bin")).record for n in range(5)
    ]
    output = (
        await upload(
            store, b"out", metadata={"service_id": SERVICE, "replica_index": 1, "path": "o/x"}
        )
    ).record
    newest = sorted([*made, output], key=lambda r: (r.upload_date, r.file_id), reverse=True)
    records, more = await store.list(domain.ListQuery(filter=domain.FileFilter(), limit=4))
    assert [r.file_id for r in records] == [r.file_id for r in newest[:4]] and more
    last = records[-1]
    after = domain.PagePosition(upload_date=last.upload_date, file_id=last.file_id)
    rest, more = await store.list(
        domain.ListQuery(filter=domain.FileFilter(), limit=4, after=after)
    )
    assert [r.file_id for r in rest] == [r.file_id for r in newest[4:]] and not more
    skipped, _ = await store.list(domain.ListQuery(filter=domain.FileFilter(), limit=2, skip=5))
    assert [r.file_id for r in skipped] == [newest[5].file_id]
    by_name, _ = await store.list(everything(filename="f1.bin"))
    assert {r.file_id for r in by_name} == {made[1].file_id, made[3].file_id}
    outputs, _ = await store.list(everything(service_id=SERVICE, replica_index=1))
    assert [r.file_id for r in outputs] == [output.file_id]
    assert await store.list(everything(service_id=SERVICE, replica_index=0)) == ([], False)


async def test_a_recorded_output_is_a_reference_of_its_own_recorded_once(
    store: ports.FileStore,
) -> None:
    labels = {"service_id": SERVICE, "replica_index": 0, "path": "out/kpi.json"}
    content = f"kpi {ObjectId()}".encode()
    plain = await upload(store, content)
    await upload(store, content, metadata=labels)
    await upload(store, content, metadata=labels)  # collected again after a crash
    held = await store.references(plain.record.file_id)
    assert len(held.uploads) == 1
    assert [(o.service_id, o.replica_index, o.path) for o in held.outputs] == [
        (SERVICE, 0, "out/kpi.json")
    ]
    assert held.output_service_ids == [SERVICE]


async def test_a_delete_commits_only_on_the_generation_it_read(store: ports.FileStore) -> None:
    record = (await upload(store, f"del {ObjectId()}".encode())).record
    read_before = await store.references(record.file_id)
    await store.announce_mount(record.file_id)  # a launch in between
    assert not await store.delete_if_unchanged(record.file_id, generation=read_before.generation)
    assert (await store.get(record.file_id)).file_id == record.file_id
    current = await store.references(record.file_id)
    assert current.generation > read_before.generation
    assert await store.delete_if_unchanged(record.file_id, generation=current.generation)
    with pytest.raises(errors.NotFound):
        await store.get(record.file_id)
    with pytest.raises(errors.NotFound):
        await store.references(record.file_id)
    again = await upload(store, f"del {ObjectId()}".encode())
    assert not again.deduplicated


async def test_a_new_upload_reference_also_moves_the_generation(store: ports.FileStore) -> None:
    content = f"gen {ObjectId()}".encode()
    record = (await upload(store, content)).record
    read_before = await store.references(record.file_id)
    await upload(store, content)
    assert not await store.delete_if_unchanged(record.file_id, generation=read_before.generation)


async def test_an_upload_reference_is_dropped_once(store: ports.FileStore) -> None:
    content = f"drop {ObjectId()}".encode()
    record = (await upload(store, content)).record
    await upload(store, content)
    held = await store.references(record.file_id)
    assert await store.drop_upload_reference(held.uploads[-1]) is True
    assert await store.drop_upload_reference(held.uploads[-1]) is False
    assert len((await store.references(record.file_id)).uploads) == 1


async def test_unknown_files_are_not_found(store: ports.FileStore) -> None:
    unknown = str(ObjectId())
    with pytest.raises(errors.NotFound):
        await store.get(unknown)
    with pytest.raises(errors.NotFound):
        await store.announce_mount(unknown)
    with pytest.raises(errors.NotFound):
        await store.references(unknown)


async def test_a_listing_by_service_has_one_row_per_recorded_output(
    store: ports.FileStore,
) -> None:
    """Identical outputs of two services are stored once; each service's listing still
    shows its own output (its name, replica, path, run), not the first uploader's."""
    other = "76543210fedcba9876543210"
    content = f"same output {ObjectId()}".encode()
    mine = {"service_id": SERVICE, "replica_index": 0, "path": "out/a.json", "run": "r1"}
    theirs = {"service_id": other, "replica_index": 2, "path": "b/totals.json", "run": "r2"}
    first = (await upload(store, content, filename="a.json", metadata=mine)).record
    await upload(store, content, filename="totals.json", metadata=theirs)
    await upload(store, content, filename="a.json", metadata={**mine, "replica_index": 1})

    rows, more = await store.list(everything(service_id=other))
    assert not more
    assert [(r.file_id, r.filename, r.length, r.sha256) for r in rows] == [
        (first.file_id, "totals.json", len(content), first.sha256)
    ]
    assert {k: rows[0].metadata[k] for k in theirs} == theirs
    ours, _ = await store.list(everything(service_id=SERVICE))
    assert [r.metadata["replica_index"] for r in ours] == [1, 0], "newest recorded first"
    assert {r.file_id for r in ours} == {first.file_id}
    # The first upload's row is the stored file as an unfiltered listing shows it.
    (row_of_first,) = [r for r in ours if r.metadata["replica_index"] == 0]
    (stored,) = (await store.list(everything()))[0]
    assert (row_of_first.filename, row_of_first.upload_date, dict(row_of_first.metadata)) == (
        stored.filename,
        stored.upload_date,
        dict(stored.metadata),
    )
    replica, _ = await store.list(everything(service_id=SERVICE, replica_index=1))
    assert [r.metadata["replica_index"] for r in replica] == [1]
    named, _ = await store.list(everything(service_id=SERVICE, filename="totals.json"))
    assert named == []

    page, more = await store.list(
        domain.ListQuery(filter=domain.FileFilter(service_id=SERVICE), limit=1)
    )
    assert more and page == ours[:1]
    last = page[-1]
    after = domain.PagePosition(upload_date=last.upload_date, file_id=last.file_id, row=last.row)
    rest, more = await store.list(
        domain.ListQuery(filter=domain.FileFilter(service_id=SERVICE), limit=1, after=after)
    )
    assert rest == ours[1:] and not more


async def test_an_output_collected_again_is_one_reference_and_one_row(
    store: ports.FileStore,
) -> None:
    """The operator collects a replica's folder again after a crash: the upload that
    stored the file and the one answered its id record the same output once."""
    labels = {"service_id": SERVICE, "replica_index": 3, "path": "r.json", "run": "r"}
    content = f"again {ObjectId()}".encode()
    first = (await upload(store, content, filename="r.json", metadata=labels)).record
    again = await upload(store, content, filename="r.json", metadata=labels)
    assert again.deduplicated
    held = await store.references(first.file_id)
    assert [(o.service_id, o.replica_index, o.path) for o in held.outputs] == [
        (SERVICE, 3, "r.json")
    ]
    rows, _ = await store.list(everything(service_id=SERVICE, replica_index=3))
    assert [r.file_id for r in rows] == [first.file_id]
