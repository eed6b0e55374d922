"""The operator's AnalyticsStore contract, passed by both adapters against their real
backends and by the in-memory fake the unit tier's reconciler tests use.

``kubernetes``: :class:`KubeAnalyticsStore` on the real kube-apiserver (CRD of
``infra/crds``, the operator's own ServiceAccount and Role); ``local``:
:class:`MongoAnalyticsStore` on FerretDB; ``memory``:
:class:`dtpoc_operator.memory.InMemoryAnalyticsStore`. The platform's side
(launch, spec change, deletion) is written by the orchestrator's real store
adapters of the same backend (the fake plays it itself), so each case shows
what the operator sees of what the orchestrator wrote.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from dtpoc_common import analytics
from dtpoc_common.vocabulary import Phase, ReplicaState
from dtpoc_local.databases import drop_databases, unique_db_name
from dtpoc_local.servers.operator import operator_kubeconfig
from dtpoc_operator import memory, ports
from dtpoc_operator.kube import api as kapi
from dtpoc_operator.kube.store import KubeAnalyticsStore
from dtpoc_operator.local.store import MongoAnalyticsStore
from dtpoc_operator.model import Condition, Replica, ServiceKey, Status
from dtpoc_orchestrator import store as orchestrator_store
from dtpoc_orchestrator.adapters import kubernetes, local

pytestmark = pytest.mark.asyncio(loop_scope="session")

SPEC: dict[str, Any] = {"image": "img", "jobType": "ondemand", "reps": 2, "command": ["run"]}


class Platform(Protocol):
    """What the orchestrator writes: launches, spec changes, deletions."""

    async def create(self, service_id: str, spec: dict[str, Any]) -> None: ...
    async def patch_spec(self, service_id: str, changes: dict[str, Any]) -> None: ...
    async def delete(self, service_id: str) -> None: ...


@dataclass
class OrchestratorPlatform:
    adapter: orchestrator_store.AnalyticsStore

    async def create(self, service_id: str, spec: dict[str, Any]) -> None:
        await self.adapter.create(
            service_id=service_id, spec=analytics.spec_from_dict(spec), labels={}
        )

    async def patch_spec(self, service_id: str, changes: dict[str, Any]) -> None:
        await self.adapter.patch_spec(service_id, changes)

    async def delete(self, service_id: str) -> None:
        await self.adapter.delete(service_id)


@dataclass
class FakePlatform:
    fake: memory.InMemoryAnalyticsStore

    async def create(self, service_id: str, spec: dict[str, Any]) -> None:
        self.fake.create(service_id, spec)

    async def patch_spec(self, service_id: str, changes: dict[str, Any]) -> None:
        self.fake.patch_spec(service_id, changes)

    async def delete(self, service_id: str) -> None:
        self.fake.delete(service_id)


@dataclass
class Rig:
    store: ports.AnalyticsStore
    platform: Platform
    namespace: str

    def key(self, service_id: str) -> ServiceKey:
        return ServiceKey(namespace=self.namespace, name=service_id)


@pytest.fixture(params=["kubernetes", "local", "memory"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    if request.param == "memory":
        fake = memory.InMemoryAnalyticsStore(namespace="lab")
        yield Rig(store=fake, platform=FakePlatform(fake), namespace="lab")
        return
    if request.param == "local":
        mongodb_uri: str = request.getfixturevalue("mongodb_uri")
        database = unique_db_name("opstore")
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
        writer = local.LocalAnalyticsStore(
            client[database]["analytics"], namespace="lab", poll_seconds=0.05
        )
        try:
            yield Rig(
                store=MongoAnalyticsStore(client, database=database, collection="analytics"),
                platform=OrchestratorPlatform(writer),
                namespace="",
            )
        finally:
            await client.close()
            drop_databases(mongodb_uri, {database})
        return
    kube = request.getfixturevalue("kube")
    request.getfixturevalue("analytics_crd")
    namespace: str = request.getfixturevalue("kube_namespace")
    kubeconfig = operator_kubeconfig(kube, namespace, tmp_path / "operator.kubeconfig")
    api = kapi.KubeApi(await kapi.load_configuration(str(kubeconfig)))
    writer_k = await kubernetes.KubernetesAnalyticsStore.connect(
        kubeconfig=kube.kubeconfig_path, namespace=namespace, timeout_seconds=10
    )
    try:
        yield Rig(
            store=KubeAnalyticsStore(api, namespaces=[namespace]),
            platform=OrchestratorPlatform(writer_k),
            namespace=namespace,
        )
    finally:
        await writer_k.close()
        await api.close()


def new_id() -> str:
    return str(ObjectId())


def a_status(service_id: str) -> Status:
    return Status(
        phase=Phase.RUNNING,
        observed_generation=1,
        replicas=(
            Replica(service_id, 0, ReplicaState.RUNNING, pod_name="p0"),
            Replica(
                service_id,
                1,
                ReplicaState.SUCCEEDED,
                exit_code=0,
                output_file_ids=("0123456789abcdef0123456a",),
                outputs_collected=True,
                pod_name="p1",
            ),
        ),
        conditions=(Condition("Ready", "False", reason="Starting"),),
        active=1,
        succeeded=1,
        total=2,
        message="replica 0 is running",
    )


async def test_an_unknown_service_is_none(rig: Rig) -> None:
    assert await rig.store.get(rig.key(new_id())) is None


async def test_a_launch_is_listed_and_read_with_its_spec_and_no_status(rig: Rig) -> None:
    service_id = new_id()
    await rig.platform.create(service_id, SPEC)
    assert rig.key(service_id) in await rig.store.list_keys()
    got = await rig.store.get(rig.key(service_id))
    assert got is not None
    assert (got.service_id, got.generation, got.deleting) == (service_id, 1, False)
    assert (got.spec.image, got.spec.job_type, got.spec.reps) == ("img", "ondemand", 2)
    assert got.spec.command == ("run",)
    assert got.status == Status()


async def test_a_written_status_reads_back_and_what_went_away_is_gone(rig: Rig) -> None:
    service_id = new_id()
    await rig.platform.create(service_id, SPEC)
    resource = await rig.store.get(rig.key(service_id))
    assert resource is not None
    written = a_status(service_id)
    await rig.store.write_status(resource, written)
    again = await rig.store.get(rig.key(service_id))
    assert again is not None
    assert again.status == written
    # A later status without a message or replicas: nothing of the old one stays.
    smaller = Status(phase=Phase.PENDING, observed_generation=1, total=2)
    await rig.store.write_status(again, smaller)
    last = await rig.store.get(rig.key(service_id))
    assert last is not None
    assert last.status == smaller


async def test_a_spec_change_is_read_with_a_new_generation(rig: Rig) -> None:
    service_id = new_id()
    await rig.platform.create(service_id, SPEC)
    await rig.platform.patch_spec(service_id, {"replicaAttempts": {"1": 2}})
    got = await rig.store.get(rig.key(service_id))
    assert got is not None
    assert got.generation == 2
    assert (got.spec.attempt_of(0), got.spec.attempt_of(1)) == (1, 2)


async def test_a_deletion_waits_for_the_operator_then_the_service_is_gone(rig: Rig) -> None:
    service_id = new_id()
    await rig.platform.create(service_id, SPEC)
    resource = await rig.store.get(rig.key(service_id))
    assert resource is not None
    resource = await rig.store.ensure_finalizer(resource)
    resource = await rig.store.ensure_finalizer(resource)  # twice: still one to remove
    await rig.platform.delete(service_id)
    deleting = await rig.store.get(rig.key(service_id))
    assert deleting is not None, "the deletion waits for the operator"
    assert deleting.deleting
    assert deleting.deletion_time is not None
    await rig.store.write_status(deleting, a_status(service_id))  # the final status
    final = await rig.store.get(rig.key(service_id))
    assert final is not None and final.status.phase == Phase.RUNNING
    await rig.store.finish_deletion(final)
    assert await rig.store.get(rig.key(service_id)) is None
    assert rig.key(service_id) not in await rig.store.list_keys()
    await rig.store.finish_deletion(final)  # again: nothing left to do, no error


async def test_finishing_a_deletion_nobody_asked_for_keeps_the_service(rig: Rig) -> None:
    service_id = new_id()
    await rig.platform.create(service_id, SPEC)
    resource = await rig.store.get(rig.key(service_id))
    assert resource is not None
    await rig.store.finish_deletion(await rig.store.ensure_finalizer(resource))
    kept = await rig.store.get(rig.key(service_id))
    assert kept is not None and not kept.deleting
