"""The local Analytics store: documents in MongoDB (``orchestrator.analytics``).

The orchestrator's local backend writes ``{_id: <service id>, metadata:
{name, namespace, labels, generation, creationTimestamp, deletionTimestamp?},
spec, status}``; this operator reads them by polling (FerretDB has no change
streams), writes ``status`` only, and deletes a document once it has handled
its ``deletionTimestamp`` (the local runtime's counterpart of a finalizer).

Every read and write is on ``{_id: <service id>}`` alone, the id as the string
the orchestrator writes: FerretDB 1.x on SQLite answers only that filter from
its index and decodes every document for any other (``$in`` of both id forms,
as this module once did, or a second field). Conditions are checked on the
document read. What changed since the last poll comes from the change
journal (:mod:`dtpoc_common.changes`), not from listing the collection;
:meth:`MongoAnalyticsStore.list_keys` is the slow full resync. Each status
write and removal is appended to the status journal in turn, which keeps the
orchestrator's in-memory status answers exact.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf import json_format
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from dtpoc_common import analytics, changes
from dtpoc_common import logging as dlog
from dtpoc_common.vocabulary import JobType, Phase
from dtpoc_operator import model, ports
from dtpoc_operator.model import AnalyticsResource, ServiceKey, Status

log = dlog.get_logger(__name__)


class StoreUnavailable(ports.AdapterError):
    """MongoDB did not answer; the reconcile is retried."""


def _id_filter(service_id: str) -> dict[str, Any]:
    """The one filter FerretDB answers from its index: ``_id`` alone, as a string."""
    return {"_id": service_id}


def _time(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def to_resource(doc: dict[str, Any]) -> AnalyticsResource:
    """A local document (keys escaped, see :mod:`dtpoc_common.analytics`) as a resource."""
    service_id = str(doc["_id"])
    resource = analytics.resource_from_local_document(doc)
    meta = resource.get("metadata") or {}
    spec = model.ServiceSpec.from_proto(analytics.spec_from_dict(resource.get("spec") or {}))
    raw_status = resource.get("status") or {}
    try:
        status = model.status_from_proto(analytics.status_from_dict(raw_status))
    except json_format.ParseError as error:
        log.warning("unreadable status replaced", service_id=service_id, error=str(error))
        status = Status()
    created = _time(meta.get("creationTimestamp"))
    deleted = _time(meta.get("deletionTimestamp"))
    return AnalyticsResource(
        key=ServiceKey(namespace="", name=service_id),
        uid=f"{service_id}@{created.isoformat() if created else ''}",
        generation=int(meta.get("generation") or 1),
        spec=spec,
        status=status,
        deleting=meta.get("deletionTimestamp") not in (None, ""),
        deletion_time=deleted,
        creation_time=created,
        raw_status=raw_status,
    )


#: What the full resync reads of each document: enough to tell a settled service.
_STATE_FIELDS = {"_id": 1, "spec.jobType": 1, "status.phase": 1, "metadata.deletionTimestamp": 1}


def settled(doc: dict[str, Any]) -> bool:
    """An ondemand service that ended (succeeded or failed) and is not being deleted.

    Nothing can change for it any more (its spec is immutable, its replicas
    ended, the reconcile that wrote the final phase collected every output),
    so a periodic resync need not reconcile it again; the first listing after
    a start does, which finds copies a crash left behind.
    """
    spec = doc.get("spec") or {}
    status = doc.get("status") or {}
    meta = doc.get("metadata") or {}
    return (
        spec.get("jobType") == JobType.ONDEMAND
        and status.get("phase") in (Phase.SUCCEEDED, Phase.FAILED)
        and meta.get("deletionTimestamp") in (None, "")
    )


class MongoAnalyticsStore:
    """:class:`dtpoc_operator.ports.AnalyticsStore` over a MongoDB collection."""

    def __init__(self, client: AsyncMongoClient[Any], *, database: str, collection: str) -> None:
        self._collection = client[database][collection]
        self._changes = changes.ChangeReader(client[database][changes.journal_name(collection)])
        self._status_changes = changes.ChangeWriter(
            client[database][changes.status_journal_name(collection)]
        )

    async def _announce(self, service_id: str) -> None:
        """Tell the orchestrator's status cache; a lost entry costs its expiry delay only."""
        try:
            await self._status_changes.append(service_id)
        except PyMongoError as error:
            log.warning(
                "status journal not written; the orchestrator's cached status expires later",
                service_id=service_id,
                error=str(error)[:300],
            )

    async def start_changes(self) -> None:
        """Read changes from now on (call before the full listing they complement)."""
        try:
            await self._changes.start()
        except PyMongoError as error:
            raise StoreUnavailable(f"reading the change journal: {error}") from None

    async def changed_keys(self) -> list[ServiceKey]:
        """Services the orchestrator changed since the last call (oldest first, may repeat)."""
        try:
            ids = await self._changes.changed()
        except PyMongoError as error:
            raise StoreUnavailable(f"reading the change journal: {error}") from None
        return [ServiceKey(namespace="", name=i) for i in dict.fromkeys(ids)]

    async def get(self, key: ServiceKey) -> AnalyticsResource | None:
        try:
            doc = await self._collection.find_one(_id_filter(key.name))
        except PyMongoError as error:
            raise StoreUnavailable(f"reading Analytics {key.name}: {error}") from None
        return to_resource(doc) if doc is not None else None

    async def list_keys(self) -> list[ServiceKey]:
        return [key for key, _settled in await self.list_states()]

    async def list_states(self) -> list[tuple[ServiceKey, bool]]:
        """Every service, and whether it is settled (:func:`settled`): the full resync."""
        try:
            docs = await self._collection.find({}, _STATE_FIELDS).to_list(None)
        except PyMongoError as error:
            raise StoreUnavailable(f"listing Analytics: {error}") from None
        return [(ServiceKey(namespace="", name=str(d["_id"])), settled(d)) for d in docs]

    async def ensure_finalizer(self, resource: AnalyticsResource) -> AnalyticsResource:
        return resource

    async def write_status(self, resource: AnalyticsResource, status: Status) -> None:
        body = analytics.escape_keys(analytics.status_to_dict(model.status_to_proto(status)))
        try:
            await self._collection.update_one(
                _id_filter(resource.service_id), {"$set": {"status": body}}
            )
        except PyMongoError as error:
            raise StoreUnavailable(
                f"writing the status of {resource.service_id}: {error}"
            ) from None
        await self._announce(resource.service_id)

    async def finish_deletion(self, resource: AnalyticsResource) -> None:
        try:
            current = await self._collection.find_one(_id_filter(resource.service_id))
            if current is None or (current.get("metadata") or {}).get("deletionTimestamp") in (
                None,
                "",
            ):
                return  # gone already, or not marked (the mark is never taken back)
            await self._collection.delete_one(_id_filter(resource.service_id))
        except PyMongoError as error:
            raise StoreUnavailable(f"deleting {resource.service_id}: {error}") from None
        await self._announce(resource.service_id)
