"""The local operator's full resync skips services that ended: what it lists of each.

A resync used to reconcile every service ever launched every 30 s (one read
each), so the database work per replica grew with the run's length and the
number of services stored. The listing now tells a settled service (ondemand,
succeeded or failed, not being deleted) from one that still needs work, read
from the documents the orchestrator and the operator really write.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_operator import model
from dtpoc_operator.local import poll
from dtpoc_operator.local.store import MongoAnalyticsStore
from dtpoc_orchestrator.adapters.local import LocalAnalyticsStore


async def test_resync_after_the_first_skips_ended_ondemand_services(
    mongodb_uri: str, mongo_db_name: str
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    try:
        orchestrator = LocalAnalyticsStore(client[mongo_db_name]["analytics"], namespace="")
        operator = MongoAnalyticsStore(client, database=mongo_db_name, collection="analytics")
        ondemand = analytics_pb2.AnalyticsSpec(
            image="sim", version="1", job_type="ondemand", reps=1
        )
        scheduled = analytics_pb2.AnalyticsSpec(
            image="sim", version="1", job_type="scheduled", reps=1, schedule="*/5 * * * *"
        )
        ids = {name: str(ObjectId()) for name in ("done", "failed", "running", "deleted", "cron")}
        for name, service_id in ids.items():
            spec = scheduled if name == "cron" else ondemand
            await orchestrator.create(service_id=service_id, spec=spec, labels={})
        phases = {"done": "succeeded", "failed": "failed", "running": "running"}
        phases |= {"deleted": "succeeded", "cron": "running"}
        for name, phase in phases.items():
            key = model.ServiceKey(namespace="", name=ids[name])
            resource = await operator.get(key)
            assert resource is not None
            await operator.write_status(resource, model.Status(phase=phase))
        await orchestrator.delete(ids["deleted"])  # terminate: work to do again

        states = await operator.list_states()
        first = {k.name for k in poll.resync_keys(states, first=True)}
        later = {k.name for k in poll.resync_keys(states, first=False)}
    finally:
        await client.close()
    assert first == set(ids.values())
    assert later == {ids["running"], ids["deleted"], ids["cron"]}
