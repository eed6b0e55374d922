"""Every query of the launch, status and local-poll paths is answered from FerretDB's index.

Answered from the index means both: FerretDB pushes the filter down to SQLite
(``filterPushdown``) and SQLite's plan for it is a ``SEARCH ... USING INDEX``,
not a ``SCAN`` of the table.

FerretDB 1.x on SQLite answers a filter from its index only when it is
exactly ``{_id: <string or ObjectId>}``; any other filter (``$in``, a second
field, a range) makes it read and decode every document of the collection
in Go, which is what made 200 services at once collapse (issue 18). FerretDB
says which it did in ``explain`` (``filterPushdown``). These tests run the
real adapters (orchestrator records and local store, the operator's local
store, the change journal) against the real FerretDB, catch every filter
they send with pymongo's command monitoring, and ask FerretDB to explain
each one: a hot-path query that stops being pushed down fails here, naming
the operation and the filter.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pymongo
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import changes
from dtpoc_operator import model
from dtpoc_operator.local.store import MongoAnalyticsStore
from dtpoc_orchestrator import domain
from dtpoc_orchestrator.adapters.local import LocalAnalyticsStore
from dtpoc_orchestrator.adapters.records import ServiceRecords

FILTER_COMMANDS = ("find", "update", "delete", "count", "findAndModify")


@dataclass
class Filters(monitoring.CommandListener):
    """Every (collection, filter) a client sends, tagged with the operation running."""

    operation: str = ""
    seen: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if name not in FILTER_COMMANDS:
            return
        command = event.command
        collection = str(command[name])
        if name == "find":
            filters = [command.get("filter", {})]
        elif name == "update":
            filters = [u["q"] for u in command["updates"]]
        elif name == "delete":
            filters = [d["q"] for d in command["deletes"]]
        elif name == "count":
            filters = [command.get("query", {})]
        else:
            filters = [command.get("query", {})]
        for query in filters:
            self.seen.append((self.operation, collection, dict(query)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


@dataclass
class Rig:
    database: str
    filters: Filters
    client: AsyncMongoClient[dict[str, Any]]
    explainer: pymongo.MongoClient[dict[str, Any]]

    async def run(self, operation: str, step: Callable[[], Awaitable[Any]]) -> Any:
        self.filters.operation = operation
        try:
            return await step()
        finally:
            self.filters.operation = ""

    def explain(self, collection: str, query: dict[str, Any]) -> dict[str, Any]:
        return self.explainer[self.database].command(
            {"explain": {"find": collection, "filter": query}, "verbosity": "queryPlanner"}
        )

    def pushed_down(self, collection: str, query: dict[str, Any]) -> bool:
        return bool(self.explain(collection, query).get("filterPushdown"))

    def indexed(self, collection: str, query: dict[str, Any]) -> bool:
        """Pushed down and answered from the ``_id`` index: SQLite's plan is a SEARCH.

        FerretDB 1.24 as released pushed ``{_id}`` down as an expression its own
        index does not match, so SQLite scanned the table (plan ``SCAN``) for every
        point read, update and delete (tools/testbin/ferretdb-sqlite-id-index.patch).
        """
        answer = self.explain(collection, query)
        plan = " ".join(str(step) for step in (answer.get("queryPlanner") or {}).get("Plan", []))
        return bool(answer.get("filterPushdown")) and "USING INDEX" in plan and "SCAN" not in plan

    def not_pushed_down(self) -> list[str]:
        return [
            f"{operation}: {collection} {query}"
            for operation, collection, query in self.filters.seen
            if not self.indexed(collection, query)
        ]


@contextlib.asynccontextmanager
async def open_rig(mongodb_uri: str, database: str) -> AsyncIterator[Rig]:
    """Clients made in the test's own event loop (an async client is bound to its loop)."""
    filters = Filters()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongodb_uri, event_listeners=[filters], tz_aware=True
    )
    explainer: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongodb_uri)
    try:
        yield Rig(database=database, filters=filters, client=client, explainer=explainer)
    finally:
        await client.close()
        explainer.close()


def _record(state: str = domain.STATE_CREATING) -> domain.ServiceRecord:
    return domain.ServiceRecord(
        id=str(ObjectId()),
        state=state,
        created_at=time.time(),
        spec=analytics_pb2.AnalyticsSpec(
            image="ghcr.io/example/sim", version="1", job_type="ondemand", reps=2
        ),
        labels={},
        namespace="lab",
        backend="local",
    )


async def test_launch_and_status_queries_are_pushed_down(
    mongodb_uri: str, mongo_db_name: str
) -> None:
    async with open_rig(mongodb_uri, mongo_db_name) as rig:
        await _launch_and_status(rig)


async def _launch_and_status(rig: Rig) -> None:
    records = ServiceRecords(rig.client[rig.database]["services"])
    store = LocalAnalyticsStore(
        rig.client[rig.database]["analytics"], namespace="lab", read_cache=True
    )
    status_journal = rig.client[rig.database][changes.status_journal_name("analytics")]
    for _ in range(3):  # others in the collections, as on a platform in use
        other = _record(domain.STATE_LAUNCHED)
        await records.insert(other)
        await store.create(service_id=other.id, spec=other.spec, labels={})
        await changes.ChangeWriter(status_journal).append(other.id)  # the operator's
    launched, failed = _record(), _record()
    for record in (launched, failed):
        await rig.run("launch: insert record", lambda r=record: records.insert(r))
    await rig.run(
        "launch: create resource",
        lambda: store.create(service_id=launched.id, spec=launched.spec, labels={}),
    )
    assert await rig.run("launch: mark launched", lambda: records.mark_launched(launched.id))
    assert await rig.run("launch: undo", lambda: records.delete_creating(failed.id))
    assert not await rig.run(
        "settle: launched record stays", lambda: records.delete_creating(launched.id)
    )
    assert await rig.run("status: record", lambda: records.get(launched.id)) is not None
    assert await rig.run("status: resource", lambda: store.get(launched.id)) is not None
    many = await rig.run("list: resources", lambda: store.get_many([launched.id, other.id]))
    assert set(many) == {launched.id, other.id}
    assert await rig.run("terminate: mark", lambda: store.delete(launched.id))
    assert await rig.run(
        "terminate: record",
        lambda: records.mark_terminated(launched.id, at=time.time(), last_status=None),
    )
    await rig.run(
        "terminate: keep status",
        lambda: records.keep_last_status(launched.id, analytics_pb2.AnalyticsStatus()),
    )
    assert {op for op, _c, _q in rig.filters.seen} >= {
        "launch: mark launched",
        "status: record",
        "status: resource",
    }
    assert rig.not_pushed_down() == []


async def test_operator_poll_and_status_writes_are_pushed_down(
    mongodb_uri: str, mongo_db_name: str
) -> None:
    async with open_rig(mongodb_uri, mongo_db_name) as rig:
        await _operator_poll(rig)


async def _operator_poll(rig: Rig) -> None:
    orchestrator_side = LocalAnalyticsStore(
        rig.client[rig.database]["analytics"], namespace="", read_cache=True
    )
    operator_side = MongoAnalyticsStore(rig.client, database=rig.database, collection="analytics")
    await rig.run("poll: start", operator_side.start_changes)
    spec = analytics_pb2.AnalyticsSpec(image="sim", version="1", job_type="ondemand", reps=1)
    ids = [str(ObjectId()) for _ in range(3)]
    for service_id in ids:
        await orchestrator_side.create(service_id=service_id, spec=spec, labels={})
    changed = await rig.run("poll: changes", operator_side.changed_keys)
    assert [k.name for k in changed] == ids
    assert await rig.run("poll: nothing new", operator_side.changed_keys) == []
    key = model.ServiceKey(namespace="", name=ids[0])
    resource = await rig.run("reconcile: read", lambda: operator_side.get(key))
    assert resource is not None
    before = await rig.run("status: cached read", lambda: orchestrator_side.get(ids[0]))
    assert before is not None and not before.status.phase
    await rig.run(
        "reconcile: write status",
        lambda: operator_side.write_status(resource, model.Status(phase="running")),
    )
    # The operator's status journal entry makes the orchestrator's next read exact.
    after = await rig.run("status: read after a write", lambda: orchestrator_side.get(ids[0]))
    assert after is not None and after.status.phase == "running"
    await orchestrator_side.delete(ids[0])
    changed = await rig.run("poll: deletion", operator_side.changed_keys)
    assert [k.name for k in changed] == [ids[0]]
    deleting = await rig.run("reconcile: read deleting", lambda: operator_side.get(key))
    assert deleting is not None and deleting.deleting
    await rig.run("terminate: finish", lambda: operator_side.finish_deletion(deleting))
    assert await operator_side.get(key) is None
    assert rig.not_pushed_down() == []


async def test_explain_tells_a_scan_from_a_point_read(mongodb_uri: str, mongo_db_name: str) -> None:
    """The check above can fail: the filter the operator once sent is a scan."""
    async with open_rig(mongodb_uri, mongo_db_name) as rig:
        _scan_and_point(rig)


def _scan_and_point(rig: Rig) -> None:
    service_id = str(ObjectId())
    collection = rig.explainer[rig.database]["analytics"]
    collection.insert_one({"_id": service_id})
    assert rig.pushed_down("analytics", {"_id": service_id})
    assert rig.indexed("analytics", {"_id": service_id})
    assert not rig.indexed("analytics", {"_id": {"$in": [service_id, ObjectId(service_id)]}})
    assert not rig.pushed_down("analytics", {"_id": {"$in": [service_id, ObjectId(service_id)]}})
    assert not rig.pushed_down("analytics", {"_id": service_id, "state": "creating"})


async def test_journal_is_trimmed_by_id_and_a_reader_left_behind_resyncs(
    mongodb_uri: str, mongo_db_name: str
) -> None:
    """The change journal keeps its latest entries only; nobody misses a change."""
    async with open_rig(mongodb_uri, mongo_db_name) as rig:
        await _journal_trim(rig)


async def _journal_trim(rig: Rig) -> None:
    journal = rig.client[rig.database]["analytics_changes"]
    writer = changes.ChangeWriter(journal, keep=changes.HEAD_EVERY)
    behind, keeping_up = changes.ChangeReader(journal), changes.ChangeReader(journal)
    await behind.start()
    await keeping_up.start()
    written = [f"service-{n}" for n in range(3 * changes.HEAD_EVERY)]
    read: list[str] = []
    for service_id in written:
        await rig.run("launch: journal entry", lambda s=service_id: writer.append(s))
        read += await rig.run("poll: changes", keeping_up.changed)
    assert read == written
    remaining = rig.explainer[rig.database]["analytics_changes"].count_documents({})
    assert remaining == changes.HEAD_EVERY + 1  # the latest block and the head hint
    with pytest.raises(changes.ChangesLost):
        await behind.changed()  # its next entry was trimmed: the caller lists everything
    assert await behind.changed() == written[-1:]  # then it reads on from the head
    assert rig.not_pushed_down() == []


async def test_appends_at_once_are_written_together_in_order_beside_another_writer(
    mongodb_uri: str, mongo_db_name: str
) -> None:
    """Launches at once share journal writes; numbers stay unique and without holes, also
    when another writer takes some of them, so a reader misses none."""
    async with open_rig(mongodb_uri, mongo_db_name) as rig:
        journal = rig.client[rig.database]["analytics_changes"]
        ours, theirs = changes.ChangeWriter(journal), changes.ChangeWriter(journal)
        reader = changes.ChangeReader(journal)
        await reader.start()
        mine = [f"ours-{n}" for n in range(40)]
        other = [f"theirs-{n}" for n in range(5)]
        numbers = await asyncio.gather(
            *(ours.append(s) for s in mine), *(theirs.append(s) for s in other)
        )
        assert sorted(numbers) == list(range(1, len(mine) + len(other) + 1))
        read = await reader.changed()
        assert sorted(read) == sorted(mine + other)
        by_number = dict(zip(numbers, mine + other, strict=True))
        assert read == [by_number[n] for n in sorted(by_number)]
        assert [s for s in read if s.startswith("ours")] == mine  # in the order appended
        assert rig.not_pushed_down() == []


async def test_a_reader_far_behind_reads_every_entry_once_in_order_while_writes_go_on(
    mongodb_uri: str, mongo_db_name: str
) -> None:
    """A reader hundreds of entries behind catches up in rounds of point reads sent at
    once (a thousand launches at once make a thousand entries); entries appended during
    its rounds are neither missed nor read twice."""
    async with open_rig(mongodb_uri, mongo_db_name) as rig:
        journal = rig.client[rig.database]["analytics_changes"]
        writer = changes.ChangeWriter(journal)
        reader = changes.ChangeReader(journal)
        await reader.start()
        first = [f"early-{n}" for n in range(300)]
        for service_id in first:
            await writer.append(service_id)
        late = [f"late-{n}" for n in range(60)]
        read: list[str] = []

        async def keep_reading() -> None:
            while len(read) < len(first) + len(late):
                read.extend(await reader.changed())

        async def keep_writing() -> None:
            for service_id in late:
                await writer.append(service_id)

        await asyncio.wait_for(asyncio.gather(keep_reading(), keep_writing()), 120)
        assert read == first + late
        assert rig.not_pushed_down() == []
