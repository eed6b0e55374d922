"""Service records in MongoDB (``orchestrator.services`` by default).

One document per service::

    {_id: ObjectId, state: "creating" | "launched", created_at: <epoch s>,
     terminated_at: <epoch s> | null, spec: <AnalyticsSpec, resource JSON>,
     labels: {...}, input_file_ids: [<file id>...], namespace, backend,
     last_status: <AnalyticsStatus, resource JSON> | null,
     resubmitted_from: <service id> | "", resubmissions: [<service id>...]}

``spec`` follows the resource's desired state: a retry's ``replicaAttempts``
and a suspension's ``suspend`` are written to both.

Map keys that may contain dots (labels, resource names) are stored escaped
(:func:`dtpoc_common.analytics.escape_keys`): FerretDB refuses dotted keys.
``input_file_ids`` repeats the keys of ``spec.inputFiles`` so that "who mounts
this file" is one indexed query.

Queries on the launch and status paths filter on ``_id`` alone: FerretDB 1.x
on SQLite answers only ``{_id: <value>}`` from its index and decodes every
document of the collection for any other filter (a second field included),
so a conditional update such as ``{_id, state: "creating"}`` would cost the
whole collection (``tests/orchestrator/test_pushdown.py`` keeps this true).
The one compare-and-set a launch needs, "launched" against "removed by the
settler", is the insert of a unique ``_id`` in ``<collection>_launch``:
``{_id: <service id>, outcome: "launched" | "removed"}``; whoever inserts
first decides, and the record's ``state`` follows (a crash in between is
repaired by the next settle, which finds the decision already taken).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pymongo.errors
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import analytics
from dtpoc_common import logging as dlog
from dtpoc_orchestrator import domain
from dtpoc_orchestrator.adapters import mongo, readcache

log = dlog.get_logger(__name__)

NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]
#: Outcomes of a launch in ``<collection>_launch`` (see module docs).
LAUNCHED = "launched"
REMOVED = "removed"


def to_document(record: domain.ServiceRecord) -> mongo.Document:
    return {
        "_id": ObjectId(record.id),
        "state": record.state,
        "created_at": record.created_at,
        "terminated_at": record.terminated_at,
        "spec": analytics.escape_keys(analytics.spec_to_dict(record.spec)),
        "labels": analytics.escape_keys(record.labels),
        "input_file_ids": record.input_file_ids,
        "namespace": record.namespace,
        "backend": record.backend,
        "last_status": _status_document(record.last_status),
        "resubmitted_from": record.resubmitted_from,
        "resubmissions": list(record.resubmissions),
    }


def _status_document(status: analytics_pb2.AnalyticsStatus | None) -> Any:
    if status is None:
        return None
    return analytics.escape_keys(analytics.status_to_dict(status))


def from_document(document: mongo.Document) -> domain.ServiceRecord:
    last_status = document.get("last_status")
    terminated_at = document.get("terminated_at")
    return domain.ServiceRecord(
        id=str(document["_id"]),
        state=str(document.get("state", domain.STATE_LAUNCHED)),
        created_at=float(document.get("created_at", 0.0)),
        spec=analytics.spec_from_dict(analytics.unescape_keys(document.get("spec") or {})),
        labels=analytics.unescape_keys(document.get("labels") or {}),
        namespace=str(document.get("namespace", "")),
        backend=str(document.get("backend", "")),
        terminated_at=float(terminated_at) if terminated_at is not None else None,
        last_status=(
            analytics.status_from_dict(analytics.unescape_keys(last_status))
            if last_status is not None
            else None
        ),
        resubmitted_from=str(document.get("resubmitted_from") or ""),
        resubmissions=tuple(str(i) for i in document.get("resubmissions") or ()),
    )


class ServiceRecords:
    """The records collection; every failure to reach it is UNAVAILABLE."""

    def __init__(self, collection: AsyncCollection[mongo.Document]) -> None:
        self._collection = collection
        self._decisions = collection.database[collection.name + "_launch"]

    @contextlib.contextmanager
    def _writing(self, service_id: str, action: str) -> Iterator[None]:
        """Around every write of the record ``service_id`` (``action`` names it in the log):
        a database failure is UNAVAILABLE. The one place a subclass sees every write."""
        with mongo.unavailable_on_failure(action):
            yield

    async def _decide(self, service_id: str, outcome: str) -> str:
        """Take ``outcome`` for the launch of ``service_id`` unless one was taken; answer it."""
        try:
            await self._decisions.insert_one(
                {"_id": service_id, "outcome": outcome, "at": time.time()}
            )
        except pymongo.errors.DuplicateKeyError:
            taken = await self._decisions.find_one({"_id": service_id})
            return str(taken["outcome"]) if taken is not None else outcome
        return outcome

    async def ensure_indexes(self) -> None:
        with mongo.unavailable_on_failure("create indexes"):
            await self._collection.create_index(NEWEST_FIRST, name="newest_first")
            await self._collection.create_index(
                [("input_file_ids", ASCENDING)], name="input_file_ids"
            )
            await self._collection.create_index([("state", ASCENDING)], name="state")

    async def insert(self, record: domain.ServiceRecord) -> None:
        with self._writing(record.id, "insert record"):
            await self._collection.insert_one(to_document(record))

    async def get(self, service_id: str) -> domain.ServiceRecord | None:
        with mongo.unavailable_on_failure("get record"):
            document = await self._collection.find_one({"_id": ObjectId(service_id)})
        return from_document(document) if document is not None else None

    async def mark_launched(self, service_id: str) -> bool:
        """``creating`` -> ``launched``; False when the record is gone or not creating."""
        with self._writing(service_id, "mark record launched"):
            if await self._decide(service_id, LAUNCHED) != LAUNCHED:
                # Settled away: finish the removal a crash may have interrupted.
                await self._collection.delete_one({"_id": ObjectId(service_id)})
                return False
            result = await self._collection.update_one(
                {"_id": ObjectId(service_id)}, {"$set": {"state": domain.STATE_LAUNCHED}}
            )
        return result.matched_count == 1

    async def delete_creating(self, service_id: str) -> bool:
        """Remove a record that never got its resource; only while ``creating``."""
        with self._writing(service_id, "delete record"):
            if await self._decide(service_id, REMOVED) != REMOVED:
                return False
            result = await self._collection.delete_one({"_id": ObjectId(service_id)})
        return result.deleted_count == 1

    async def creating(self) -> list[domain.ServiceRecord]:
        with mongo.unavailable_on_failure("list creating records"):
            cursor = self._collection.find({"state": domain.STATE_CREATING})
            return [from_document(d) async for d in cursor]

    async def page(self, *, skip: int, limit: int) -> list[domain.ServiceRecord]:
        """Launched records, newest first."""
        with mongo.unavailable_on_failure("list records"):
            cursor = (
                self._collection.find({"state": domain.STATE_LAUNCHED})
                .sort(NEWEST_FIRST)
                .skip(skip)
                .limit(limit)
            )
            return [from_document(d) async for d in cursor]

    async def batches(self, *, size: int) -> AsyncIterator[list[domain.ServiceRecord]]:
        """Consecutive :meth:`page` calls, until a short or empty page."""
        skip = 0
        while True:
            batch = await self.page(skip=skip, limit=size)
            if not batch:
                return
            yield batch
            if len(batch) < size:
                return
            skip += size

    async def mark_terminated(
        self,
        service_id: str,
        *,
        at: float,
        last_status: analytics_pb2.AnalyticsStatus | None,
    ) -> bool:
        with self._writing(service_id, "mark record terminated"):
            current = await self._collection.find_one({"_id": ObjectId(service_id)})
            if current is None or current.get("terminated_at") is not None:
                return False
            # Checked on the document read, not in the filter (see module docs); two
            # terminates at once may both write, the later time by milliseconds.
            result = await self._collection.update_one(
                {"_id": ObjectId(service_id)},
                {"$set": {"terminated_at": at, "last_status": _status_document(last_status)}},
            )
        return result.matched_count == 1

    async def keep_last_status(
        self, service_id: str, status: analytics_pb2.AnalyticsStatus
    ) -> None:
        """Refresh the kept copy of the operator's status (terminated services)."""
        with self._writing(service_id, "keep last status"):
            await self._collection.update_one(
                {"_id": ObjectId(service_id)},
                {"$set": {"last_status": _status_document(status)}},
            )

    async def set_spec(self, service_id: str, spec: analytics_pb2.AnalyticsSpec) -> None:
        """Keep the record's copy of the desired state in step with the resource's."""
        with self._writing(service_id, "update record spec"):
            await self._collection.update_one(
                {"_id": ObjectId(service_id)},
                {"$set": {"spec": analytics.escape_keys(analytics.spec_to_dict(spec))}},
            )

    async def add_resubmission(self, service_id: str, resubmission_id: str) -> None:
        """Name a resubmission on the record it was made from (once)."""
        with self._writing(service_id, "link resubmission"):
            await self._collection.update_one(
                {"_id": ObjectId(service_id)}, {"$addToSet": {"resubmissions": resubmission_id}}
            )

    async def mounting(self, file_id: str) -> list[domain.ServiceRecord]:
        """Every record (any state) whose service mounts ``file_id``, oldest first."""
        with mongo.unavailable_on_failure("find records mounting a file"):
            cursor = self._collection.find({"input_file_ids": file_id}).sort("_id", ASCENDING)
            return [from_document(d) async for d in cursor]


class CachedServiceRecords(ServiceRecords):
    """Records read once and kept in memory: only for the one orchestrator of a store.

    This process writes every record, so each of its writes drops the cached
    copy (after the write, whatever its outcome: every write of the base class
    runs inside ``_writing``) and a read served from memory is what the database
    holds (:mod:`dtpoc_orchestrator.adapters.readcache`).
    Lists and queries other than by id read the database as before.
    """

    def __init__(self, collection: AsyncCollection[mongo.Document]) -> None:
        super().__init__(collection)
        self._cache: readcache.PointCache[str, domain.ServiceRecord | None] = readcache.PointCache()

    async def get(self, service_id: str) -> domain.ServiceRecord | None:
        read = super().get
        return await self._cache.get(service_id, lambda: read(service_id))

    @contextlib.contextmanager
    def _writing(self, service_id: str, action: str) -> Iterator[None]:
        try:
            with super()._writing(service_id, action):
                yield
        finally:
            self._cache.invalidate(service_id)
