"""AnalyticsStore adapter for the local runtime: a MongoDB collection.

Documents are :func:`dtpoc_common.analytics.local_document`: the resource
(``apiVersion``, ``kind``, ``metadata``, ``spec``, ``status``) plus ``_id`` =
the service id, map keys escaped. The local operator reads ``spec`` and is
the only writer of ``status``.

Deleting marks the document (``metadata.deletionTimestamp``) instead of
removing it: the local operator stops the replicas' processes, then removes
the document, as Kubernetes garbage collection would. WatchService polls
(FerretDB has no change streams).

Every query is a point read or write on ``_id`` alone (a string, the one form
the documents are written with): FerretDB 1.x on SQLite answers only
``{_id: <value>}`` from its index and decodes the whole collection for any
other filter, ``$in`` or a second field included (checked by
``tests/orchestrator/test_pushdown.py``). Conditions are therefore checked on
the document read, not in the filter. Each create and delete also appends
the service id to the change journal (:mod:`dtpoc_common.changes`), so the
operator reads what changed instead of listing every document. With
``read_cache`` (the one orchestrator of ``make run``), reads answer from
memory, kept exact by the operator's status journal
(:mod:`dtpoc_orchestrator.adapters.readcache`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import pymongo.errors
from pymongo.asynchronous.collection import AsyncCollection

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import analytics, changes, errors
from dtpoc_common import logging as dlog
from dtpoc_orchestrator import domain
from dtpoc_orchestrator.adapters import mongo, readcache, resources

BACKEND = "local"

log = dlog.get_logger(__name__)


class LocalAnalyticsStore:
    """Analytics documents in one MongoDB collection."""

    backend = BACKEND

    def __init__(
        self,
        collection: AsyncCollection[mongo.Document],
        *,
        namespace: str,
        poll_seconds: float = 0.5,
        read_cache: bool = False,
    ) -> None:
        self._collection = collection
        self.namespace = namespace
        self._poll = poll_seconds
        self._changes = changes.ChangeWriter(
            collection.database[changes.journal_name(collection.name)]
        )
        # Only when this process is the one orchestrator on the store (readcache docs).
        self._cache: readcache.PointCache[str, domain.AnalyticsObject | None] | None = None
        self._freshness: readcache.JournalFreshness | None = None
        if read_cache:
            self._cache = readcache.PointCache()
            self._freshness = readcache.JournalFreshness(
                collection.database[changes.status_journal_name(collection.name)], self._cache
            )

    def _forget(self, service_id: str) -> None:
        """This process wrote the document: the cached copy is out of date."""
        if self._cache is not None:
            self._cache.invalidate(service_id)

    async def _announce(self, service_id: str) -> None:
        """Tell the operator through the journal; a lost entry costs its resync delay only."""
        try:
            await self._changes.append(service_id)
        except pymongo.errors.PyMongoError as exc:
            log.warning(
                "change journal not written; the operator finds it at its next full resync",
                service_id=service_id,
                error=str(exc)[:300],
            )

    async def create(
        self,
        *,
        service_id: str,
        spec: analytics_pb2.AnalyticsSpec,
        labels: dict[str, str],
    ) -> domain.AnalyticsObject:
        document = analytics.local_document(
            service_id=service_id,
            namespace=self.namespace,
            spec=spec,
            labels=labels,
            created_at=dt.datetime.now(dt.UTC),
        )
        try:
            with mongo.unavailable_on_failure("create analytics document"):
                await self._collection.insert_one(document)
        except pymongo.errors.DuplicateKeyError as exc:
            raise errors.AlreadyExists(f"an Analytics document {service_id} exists") from exc
        finally:
            self._forget(service_id)
        await self._announce(service_id)
        return resources.from_resource(analytics.resource_from_local_document(document))

    async def get(self, service_id: str) -> domain.AnalyticsObject | None:
        if self._cache is None or self._freshness is None:
            return await self._read(service_id)
        await self._freshness.fresh()
        return await self._cache.get(service_id, lambda: self._read(service_id))

    async def _read(self, service_id: str) -> domain.AnalyticsObject | None:
        with mongo.unavailable_on_failure("read analytics document"):
            document = await self._collection.find_one({"_id": service_id})
        if document is None:
            return None
        return resources.from_resource(analytics.resource_from_local_document(document))

    async def get_many(self, service_ids: Sequence[str]) -> dict[str, domain.AnalyticsObject]:
        # One point read each: an ``$in`` would decode every document (see module docs).
        found = await asyncio.gather(*(self.get(i) for i in dict.fromkeys(service_ids)))
        return {o.name: o for o in found if o is not None}

    async def patch_spec(self, service_id: str, changes: dict[str, Any]) -> domain.AnalyticsObject:
        """Merge ``changes`` into the document's spec, one generation up (read, then write
        by ``_id``: the orchestrator is the spec's only writer)."""
        with mongo.unavailable_on_failure("update analytics document"):
            document = await self._collection.find_one({"_id": service_id})
            if document is None or (document.get("metadata") or {}).get("deletionTimestamp"):
                raise errors.NotFound(f"no Analytics document {service_id}")
            spec = analytics.merge_spec(
                analytics.unescape_keys(document.get("spec") or {}), changes
            )
            generation = int((document.get("metadata") or {}).get("generation") or 1) + 1
            changed = {"spec": analytics.escape_keys(spec), "metadata.generation": generation}
            try:
                await self._collection.update_one({"_id": service_id}, {"$set": changed})
            finally:
                self._forget(service_id)
            document = await self._collection.find_one({"_id": service_id})
        await self._announce(service_id)
        if document is None:
            raise errors.NotFound(f"no Analytics document {service_id}")
        return resources.from_resource(analytics.resource_from_local_document(document))

    async def delete(self, service_id: str) -> bool:
        """Mark the document for the operator; True when it exists (marked now or before)."""
        marker = analytics.format_time(dt.datetime.now(dt.UTC))
        with mongo.unavailable_on_failure("mark analytics document deleted"):
            document = await self._collection.find_one({"_id": service_id})
            if document is None:
                return False
            if (document.get("metadata") or {}).get("deletionTimestamp") is None:
                # Two terminates at once may both write: the later mark wins, by milliseconds.
                try:
                    await self._collection.update_one(
                        {"_id": service_id},
                        {"$set": {analytics.LOCAL_DELETION_TIMESTAMP: marker}},
                    )
                finally:
                    self._forget(service_id)
        await self._announce(service_id)
        return True

    async def watch(self, service_id: str) -> AsyncGenerator[domain.AnalyticsObject | None, None]:
        """The document now, then whenever it differs from the last one seen."""
        last: object = ()
        while True:
            with mongo.unavailable_on_failure("watch analytics document"):
                document = await self._collection.find_one({"_id": service_id})
            if document != last:
                last = document
                yield (
                    resources.from_resource(analytics.resource_from_local_document(document))
                    if document is not None
                    else None
                )
            await asyncio.sleep(self._poll)

    async def close(self) -> None:
        return None
