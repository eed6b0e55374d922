"""AnalyticsStore adapter for the local runtime: a MongoDB collection.

Documents are :func:`dtpoc_common.analytics.local_document`: the resource
(``apiVersion``, ``kind``, ``metadata``, ``spec``, ``status``) plus ``_id`` =
the service id, map keys escaped. The local operator reads ``spec`` and is
the only writer of ``status``.

Deleting marks the document (``metadata.deletionTimestamp``) instead of
removing it: the local operator stops the replicas' processes, then removes
the document, as Kubernetes garbage collection would. WatchService polls
(FerretDB has no change streams).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncGenerator, Sequence

import pymongo.errors
from pymongo.asynchronous.collection import AsyncCollection

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import analytics, errors
from dtpoc_orchestrator import domain
from dtpoc_orchestrator.adapters import mongo, resources

BACKEND = "local"


class LocalAnalyticsStore:
    """Analytics documents in one MongoDB collection."""

    backend = BACKEND

    def __init__(
        self,
        collection: AsyncCollection[mongo.Document],
        *,
        namespace: str,
        poll_seconds: float = 0.5,
    ) -> None:
        self._collection = collection
        self.namespace = namespace
        self._poll = poll_seconds

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
        return resources.from_resource(analytics.resource_from_local_document(document))

    async def get(self, service_id: str) -> domain.AnalyticsObject | None:
        with mongo.unavailable_on_failure("read analytics document"):
            document = await self._collection.find_one({"_id": service_id})
        if document is None:
            return None
        return resources.from_resource(analytics.resource_from_local_document(document))

    async def get_many(self, service_ids: Sequence[str]) -> dict[str, domain.AnalyticsObject]:
        if not service_ids:
            return {}
        with mongo.unavailable_on_failure("read analytics documents"):
            cursor = self._collection.find({"_id": {"$in": list(service_ids)}})
            found = [d async for d in cursor]
        objects = (
            resources.from_resource(analytics.resource_from_local_document(d)) for d in found
        )
        return {o.name: o for o in objects}

    async def delete(self, service_id: str) -> bool:
        """Mark the document for the operator; True when it exists (marked now or before)."""
        marker = analytics.format_time(dt.datetime.now(dt.UTC))
        with mongo.unavailable_on_failure("mark analytics document deleted"):
            result = await self._collection.update_one(
                {"_id": service_id, analytics.LOCAL_DELETION_TIMESTAMP: {"$exists": False}},
                {"$set": {analytics.LOCAL_DELETION_TIMESTAMP: marker}},
            )
            if result.matched_count:
                return True
            return await self._collection.count_documents({"_id": service_id}, limit=1) > 0

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
