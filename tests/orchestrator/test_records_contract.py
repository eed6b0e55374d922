"""The service records port (:class:`dtpoc_orchestrator.ports.Records`): the same tests for
the MongoDB adapter (FerretDB), its read cache (``CachedServiceRecords``: every write must
drop the cached copy, and each test reads after writing) and its in-memory fake
(``InMemoryServiceRecords``), so a use-case test on the fake (``tests/unit/orchestrator``)
says what MongoDB would do."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_local.databases import drop_databases, unique_db_name
from dtpoc_orchestrator import domain, ports
from dtpoc_orchestrator.adapters import memory, records

pytestmark = pytest.mark.asyncio(loop_scope="session")

FILE_A = "0123456789abcdef01234567"
FILE_B = "0123456789abcdef01234568"


@pytest.fixture(params=["mongodb", "mongodb-cached", "memory"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ports.Records]:
    if request.param == "memory":
        yield memory.InMemoryServiceRecords()
        return
    mongodb_uri: str = request.getfixturevalue("mongodb_uri")
    database = unique_db_name("records")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
    records_class = (
        records.CachedServiceRecords
        if request.param == "mongodb-cached"
        else records.ServiceRecords
    )
    adapter = records_class(client[database]["services"])
    await adapter.ensure_indexes()
    try:
        yield adapter
    finally:
        await client.close()
        drop_databases(mongodb_uri, {database})


def a_record(
    *, state: str = domain.STATE_CREATING, created_at: float = 100.0, mounts: tuple[str, ...] = ()
) -> domain.ServiceRecord:
    spec = analytics_pb2.AnalyticsSpec(
        image="ghcr.io/example/sim",
        version="1.0",
        job_type="ondemand",
        reps=2,
        input_files={file_id: f"in{n}.xlsx" for n, file_id in enumerate(mounts)},
    )
    return domain.ServiceRecord(
        id=str(ObjectId()),
        state=state,
        created_at=created_at,
        spec=spec,
        labels={"app.kubernetes.io/part-of": "lab"},
        namespace="lab",
        backend="local",
    )


async def test_insert_then_get_round_trips(store: ports.Records) -> None:
    record = a_record(mounts=(FILE_A,))
    await store.insert(record)
    assert await store.get(record.id) == record
    assert await store.get(str(ObjectId())) is None


async def test_launched_first_means_the_settler_cannot_remove_it(store: ports.Records) -> None:
    record = a_record()
    await store.insert(record)
    assert await store.mark_launched(record.id) is True
    assert await store.delete_creating(record.id) is False
    got = await store.get(record.id)
    assert got is not None and got.state == domain.STATE_LAUNCHED
    assert await store.creating() == []


async def test_removed_first_means_the_launch_cannot_complete(store: ports.Records) -> None:
    record = a_record()
    await store.insert(record)
    assert await store.delete_creating(record.id) is True
    assert await store.mark_launched(record.id) is False
    assert await store.get(record.id) is None
    assert await store.delete_creating(str(ObjectId())) is False


async def test_creating_lists_only_records_still_creating(store: ports.Records) -> None:
    creating, launched = a_record(), a_record()
    for record in (creating, launched):
        await store.insert(record)
    await store.mark_launched(launched.id)
    assert [r.id for r in await store.creating()] == [creating.id]


async def test_pages_are_launched_records_newest_first(store: ports.Records) -> None:
    made = [a_record(created_at=100.0 + n // 2) for n in range(7)]  # pairs share a time
    for record in made:
        await store.insert(record)
        await store.mark_launched(record.id)
    await store.insert(a_record(created_at=999.0))  # still creating: never listed
    newest = sorted(made, key=lambda r: (r.created_at, r.id), reverse=True)
    ids = [r.id for r in newest]
    assert [r.id for r in await store.page(skip=0, limit=3)] == ids[:3]
    assert [r.id for r in await store.page(skip=5, limit=10)] == ids[5:]
    batches = [[r.id for r in batch] async for batch in store.batches(size=3)]
    assert batches == [ids[0:3], ids[3:6], ids[6:]]


async def test_terminated_once_and_the_last_status_kept(store: ports.Records) -> None:
    record = a_record()
    await store.insert(record)
    await store.mark_launched(record.id)
    running = analytics_pb2.AnalyticsStatus(phase="running", active=1, total=2)
    assert await store.mark_terminated(record.id, at=200.0, last_status=running) is True
    assert await store.mark_terminated(record.id, at=300.0, last_status=None) is False
    got = await store.get(record.id)
    assert got is not None and (got.terminated_at, got.last_status) == (200.0, running)
    done = analytics_pb2.AnalyticsStatus(phase="succeeded", succeeded=2, total=2)
    await store.keep_last_status(record.id, done)
    got = await store.get(record.id)
    assert got is not None and got.last_status == done
    assert await store.mark_terminated(str(ObjectId()), at=1.0, last_status=None) is False


async def test_mounting_finds_every_state_oldest_first(store: ports.Records) -> None:
    first, second, other = a_record(mounts=(FILE_A,)), a_record(mounts=(FILE_A, FILE_B)), a_record()
    for record in (first, second, other):
        await store.insert(record)
    await store.mark_launched(second.id)
    assert [r.id for r in await store.mounting(FILE_A)] == [first.id, second.id]
    assert [r.id for r in await store.mounting(FILE_B)] == [second.id]
    assert await store.mounting("0" * 24) == []


async def test_spec_follows_and_resubmissions_are_linked_once(store: ports.Records) -> None:
    """What retry/suspend (the record's copy of the desired state) and resubmit write."""
    original = a_record(state=domain.STATE_LAUNCHED)
    await store.insert(original)
    copy = dataclasses.replace(a_record(state=domain.STATE_LAUNCHED), resubmitted_from=original.id)
    await store.insert(copy)
    for _ in range(2):
        await store.add_resubmission(original.id, copy.id)
    retried = analytics_pb2.AnalyticsSpec()
    retried.CopyFrom(original.spec)
    retried.replica_attempts[1] = 2
    await store.set_spec(original.id, retried)
    got = await store.get(original.id)
    assert got is not None
    assert got.resubmissions == (copy.id,)
    assert dict(got.spec.replica_attempts) == {1: 2}
    assert got == dataclasses.replace(original, spec=retried, resubmissions=(copy.id,))
    assert await store.get(copy.id) == copy
