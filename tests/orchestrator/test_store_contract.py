"""The AnalyticsStore contract, passed by both adapters against their real backends and by
the in-memory fake the unit tier uses.

``kubernetes``: custom resources in the real kube-apiserver with the CRD of
``infra/crds``; ``local``: documents in FerretDB; ``memory``:
``InMemoryAnalyticsStore``. The operator's part (writing status, finishing a
deletion) is played by the operator doubles of :mod:`tests.orchestrator.helpers`
(the fake plays it itself).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import analytics, errors
from dtpoc_local.databases import drop_databases, unique_db_name
from dtpoc_orchestrator import domain, store
from dtpoc_orchestrator.adapters import kubernetes, local, memory
from tests.orchestrator.helpers import (
    KubeOperatorDouble,
    LocalOperatorDouble,
    OperatorDouble,
    status_dict,
)

STEP_TIMEOUT = 20.0

# The adapters' clients are bound to the loop of the fixture that made them.
pytestmark = pytest.mark.asyncio(loop_scope="session")


def a_spec(**overrides: Any) -> analytics_pb2.AnalyticsSpec:
    spec = analytics_pb2.AnalyticsSpec(
        image="ghcr.io/example/sim",
        version="1.0",
        job_type="ondemand",
        reps=2,
        env={"A": "1"},
        command=["python", "-m", "sim"],
        input_files={"0123456789abcdef01234567": "input.xlsx"},
        active_deadline_seconds=3600,
        resources=analytics_pb2.ResourceRequirements(
            requests={"cpu": "500m"}, limits={"memory": "1Gi", "example.com/gpu": "1"}
        ),
    )
    for name, value in overrides.items():
        setattr(spec, name, value)
    return spec


class MemoryOperatorDouble(OperatorDouble):
    """The operator's part for the fake: the fake's own operator methods."""

    backend = "memory"

    def __init__(self, fake: memory.InMemoryAnalyticsStore) -> None:
        self._fake = fake

    def write_status(self, service_id: str, status: dict[str, Any]) -> None:
        self._fake.write_status(service_id, status)

    def finish_deletion(self, service_id: str) -> None:
        self._fake.finish_deletion(service_id)


@pytest.fixture(params=["local", "local-cached", "kubernetes", "memory"])
async def store_and_operator(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[store.AnalyticsStore, OperatorDouble]]:
    """An adapter on its real backend (or the fake), and the operator double that goes with it."""
    if request.param == "memory":
        fake = memory.InMemoryAnalyticsStore(namespace="lab")
        yield fake, MemoryOperatorDouble(fake)
        return
    mongodb_uri: str = request.getfixturevalue("mongodb_uri")
    if request.param in ("local", "local-cached"):
        database = unique_db_name("store")
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
        adapter = local.LocalAnalyticsStore(
            client[database]["analytics"],
            namespace="lab",
            poll_seconds=0.05,
            read_cache=request.param == "local-cached",
        )
        operator = LocalOperatorDouble(mongodb_uri, database)
        try:
            yield adapter, operator
        finally:
            operator.close()
            await client.close()
            drop_databases(mongodb_uri, {database})
        return
    kube = request.getfixturevalue("kube")
    request.getfixturevalue("analytics_crd")
    namespace = request.getfixturevalue("kube_namespace")
    kube_adapter = await kubernetes.KubernetesAnalyticsStore.connect(
        kubeconfig=kube.kubeconfig_path, namespace=namespace, timeout_seconds=10
    )
    try:
        yield kube_adapter, KubeOperatorDouble(kube, namespace)
    finally:
        await kube_adapter.close()


def new_id() -> str:
    return str(ObjectId())


async def test_create_then_get_returns_the_spec(
    store_and_operator: tuple[store.AnalyticsStore, OperatorDouble],
) -> None:
    adapter, _ = store_and_operator
    service_id = new_id()
    spec = a_spec()
    created = await adapter.create(
        service_id=service_id, spec=spec, labels={"app.kubernetes.io/part-of": "lab"}
    )
    assert created.name == service_id
    got = await adapter.get(service_id)
    assert got is not None
    assert got.spec == spec
    assert got.namespace == adapter.namespace
    assert got.labels == {
        "app.kubernetes.io/part-of": "lab",
        analytics.LABEL_SERVICE_ID: service_id,
    }
    assert got.generation == 1
    assert not got.has_status
    assert not got.deleting


async def test_get_of_an_unknown_name_is_none(
    store_and_operator: tuple[store.AnalyticsStore, OperatorDouble],
) -> None:
    adapter, _ = store_and_operator
    assert await adapter.get(new_id()) is None


async def test_get_many_returns_those_that_exist(
    store_and_operator: tuple[store.AnalyticsStore, OperatorDouble],
) -> None:
    adapter, _ = store_and_operator
    ids = [new_id() for _ in range(5)]
    for service_id in ids[:4]:
        await adapter.create(service_id=service_id, spec=a_spec(), labels={})
    found = await adapter.get_many(ids)
    assert set(found) == set(ids[:4])
    few = await adapter.get_many(ids[3:])
    assert set(few) == {ids[3]}
    assert await adapter.get_many([]) == {}


async def test_create_twice_is_already_exists(
    store_and_operator: tuple[store.AnalyticsStore, OperatorDouble],
) -> None:
    adapter, _ = store_and_operator
    service_id = new_id()
    await adapter.create(service_id=service_id, spec=a_spec(), labels={})
    with pytest.raises(errors.AlreadyExists):
        await adapter.create(service_id=service_id, spec=a_spec(), labels={})


async def test_status_written_by_the_operator_is_read_back(
    store_and_operator: tuple[store.AnalyticsStore, OperatorDouble],
) -> None:
    adapter, operator = store_and_operator
    service_id = new_id()
    await adapter.create(service_id=service_id, spec=a_spec(), labels={})
    operator.write_status(
        service_id,
        status_dict(
            phase="running",
            observed_generation=1,
            active=1,
            succeeded=1,
            total=2,
            replicas=[
                {"index": 0, "state": "running", "run": service_id},
                {
                    "index": 1,
                    "state": "succeeded",
                    "exit_code": 0,
                    "output_file_ids": ["0123456789abcdef0123456a"],
                    "outputs_collected": True,
                },
            ],
            conditions=[{"type": "Ready", "status": "False", "reason": "Starting"}],
        ),
    )
    got = await adapter.get(service_id)
    assert got is not None
    assert got.has_status
    assert got.status.phase == "running"
    assert got.status.observed_generation == 1
    assert [(r.index, r.state) for r in got.status.replicas] == [(0, "running"), (1, "succeeded")]
    assert list(got.status.replicas[1].output_file_ids) == ["0123456789abcdef0123456a"]
    assert got.spec == a_spec()  # writing status leaves the spec alone


async def test_delete_is_idempotent_and_the_resource_goes(
    store_and_operator: tuple[store.AnalyticsStore, OperatorDouble],
) -> None:
    adapter, operator = store_and_operator
    service_id = new_id()
    await adapter.create(service_id=service_id, spec=a_spec(), labels={})
    # No operator has seen it yet: the deletion still waits for one (Kubernetes: the
    # resource is created with the operator's finalizer).
    assert await adapter.delete(service_id) is True
    during = await adapter.get(service_id)
    assert during is not None, "the operator's finalizer keeps the resource until it lets go"
    assert during.deleting
    operator.finish_deletion(service_id)
    assert await adapter.get(service_id) is None
    assert await adapter.delete(service_id) is False
    assert await adapter.delete(new_id()) is False


async def _next(changes: AsyncIterator[domain.AnalyticsObject | None]) -> Any:
    return await asyncio.wait_for(anext(changes), timeout=STEP_TIMEOUT)


async def test_watch_yields_now_then_each_change_then_none(
    store_and_operator: tuple[store.AnalyticsStore, OperatorDouble],
) -> None:
    adapter, operator = store_and_operator
    service_id = new_id()
    await adapter.create(service_id=service_id, spec=a_spec(), labels={})
    async with contextlib.aclosing(adapter.watch(service_id)) as changes:
        first = await _next(changes)
        assert first is not None and not first.has_status

        operator.write_status(service_id, status_dict(phase="running", active=2, total=2))
        seen = await _next(changes)
        while seen is not None and not seen.has_status:  # a repeat of the unchanged resource
            seen = await _next(changes)
        assert seen is not None and seen.status.phase == "running"

        operator.write_status(service_id, status_dict(phase="succeeded", succeeded=2, total=2))
        while seen is not None and seen.status.phase != "succeeded":
            seen = await _next(changes)
        assert seen is not None

        await adapter.delete(service_id)
        operator.finish_deletion(service_id)
        while seen is not None:
            seen = await _next(changes)
        assert seen is None


async def test_watch_of_a_missing_resource_yields_none_first(
    store_and_operator: tuple[store.AnalyticsStore, OperatorDouble],
) -> None:
    adapter, _ = store_and_operator
    async with contextlib.aclosing(adapter.watch(new_id())) as changes:
        assert await _next(changes) is None


async def test_the_kubernetes_adapter_names_a_missing_namespace(
    kube: Any, analytics_crd: str
) -> None:
    adapter = await kubernetes.KubernetesAnalyticsStore.connect(
        kubeconfig=kube.kubeconfig_path, namespace="no-such-namespace-x1", timeout_seconds=10
    )
    try:
        with pytest.raises(errors.FailedPrecondition) as raised:
            await adapter.create(service_id=new_id(), spec=a_spec(), labels={})
        assert "no-such-namespace-x1" in raised.value.message
    finally:
        await adapter.close()


async def test_patch_spec_merges_maps_and_moves_the_generation(
    store_and_operator: tuple[store.AnalyticsStore, OperatorDouble],
) -> None:
    """What a retry writes: one replica's attempt raised, the rest of the spec kept
    (the CRD's immutability rule lets exactly that through)."""
    adapter, _ = store_and_operator
    service_id = new_id()
    spec = a_spec()
    await adapter.create(service_id=service_id, spec=spec, labels={})
    first = await adapter.patch_spec(service_id, {"replicaAttempts": {"1": 2}})
    second = await adapter.patch_spec(service_id, {"replicaAttempts": {"0": 2}})
    assert dict(first.spec.replica_attempts) == {1: 2}
    assert dict(second.spec.replica_attempts) == {0: 2, 1: 2}
    assert (first.generation, second.generation) == (2, 3)
    got = await adapter.get(service_id)
    assert got is not None and dict(got.spec.replica_attempts) == {0: 2, 1: 2}
    kept = analytics_pb2.AnalyticsSpec()
    kept.CopyFrom(got.spec)
    kept.ClearField("replica_attempts")
    assert kept == spec
    with pytest.raises(errors.NotFound):
        await adapter.patch_spec(new_id(), {"replicaAttempts": {"0": 2}})
