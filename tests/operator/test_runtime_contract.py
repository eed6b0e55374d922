"""The Runtime contract where it takes a workload: both real runtimes and the fake create a
service's replicas once, create nothing for a service that ran already, and stop.

``kubernetes``: :class:`KubeRuntime` on the real apiserver and Job controller, as the
operator's ServiceAccount, for an Analytics resource written by the orchestrator's
adapter (the Job's owner); no kubelet, so the replicas stay pending. ``local``:
:class:`LocalRuntime` with real supervised processes. ``memory``:
:class:`dtpoc_operator.memory.InMemoryRuntime`. Refusals and the output layout are in
``tests/unit/operator/test_runtime_contract.py``; replicas that run and end are shown
per runtime in tests/operator and for both in tests/e2e.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from dtpoc_common import analytics
from dtpoc_common.vocabulary import ReplicaState
from dtpoc_local.servers.operator import operator_kubeconfig
from dtpoc_operator import memory, model, ports
from dtpoc_operator.kube import api as kapi
from dtpoc_operator.kube import manifests
from dtpoc_operator.kube.runtime import KubeRuntime
from dtpoc_operator.kube.store import KubeAnalyticsStore
from dtpoc_operator.local.runtime import LocalRuntime
from dtpoc_operator.model import AnalyticsResource, Observation, Replica, ServiceKey, Status
from dtpoc_orchestrator.adapters import kubernetes
from tests.operator.helpers import INIT_IMAGE, OUTPUT_PVC

pytestmark = pytest.mark.asyncio(loop_scope="session")

DEADLINE_SECONDS = 30.0
#: Replicas that run until stopped (the local runtime runs the command; Kubernetes has no kubelet).
SPEC: dict[str, Any] = {
    "image": "img",
    "jobType": "ondemand",
    "reps": 2,
    "command": [sys.executable, "-c", "import time; time.sleep(120)"],
}


@dataclass
class Rig:
    runtime: ports.Runtime
    #: A new service's resource as the store reads it (written first where a runtime needs it).
    launch: Callable[[dict[str, Any]], Awaitable[AnalyticsResource]]


def plain_resource(spec: dict[str, Any], namespace: str = "") -> AnalyticsResource:
    service_id = str(ObjectId())
    return AnalyticsResource(
        key=ServiceKey(namespace=namespace, name=service_id),
        uid=f"{service_id}-uid",
        generation=1,
        spec=model.ServiceSpec.from_proto(analytics.spec_from_dict(spec)),
        status=Status(),
        creation_time=model.utcnow(),
    )


@pytest.fixture(params=["kubernetes", "local", "memory"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    async def plain(spec: dict[str, Any]) -> AnalyticsResource:
        return plain_resource(spec)

    if request.param == "memory":
        yield Rig(runtime=memory.InMemoryRuntime(output_root=tmp_path), launch=plain)
        return
    if request.param == "local":
        local = LocalRuntime(
            output_root=tmp_path / "outputs",
            state_root=tmp_path / "state",
            files_address="127.0.0.1:9",
            max_processes=8,
            stop_grace_seconds=5,
        )
        launched: list[AnalyticsResource] = []

        async def launch_local(spec: dict[str, Any]) -> AnalyticsResource:
            launched.append(plain_resource(spec))
            return launched[-1]

        try:
            yield Rig(runtime=local, launch=launch_local)
        finally:
            for resource in launched:
                await local.stop(resource, force=True)
                await local.forget(resource)
        return
    kube = request.getfixturevalue("kube")
    request.getfixturevalue("analytics_crd")
    namespace: str = request.getfixturevalue("kube_namespace")
    kubeconfig = operator_kubeconfig(kube, namespace, tmp_path / "operator.kubeconfig")
    api = kapi.KubeApi(await kapi.load_configuration(str(kubeconfig)))
    writer = await kubernetes.KubernetesAnalyticsStore.connect(
        kubeconfig=kube.kubeconfig_path, namespace=namespace, timeout_seconds=10
    )
    store = KubeAnalyticsStore(api, namespaces=[namespace])

    async def launch_kube(spec: dict[str, Any]) -> AnalyticsResource:
        service_id = str(ObjectId())
        await writer.create(service_id=service_id, spec=analytics.spec_from_dict(spec), labels={})
        found = await store.get(ServiceKey(namespace=namespace, name=service_id))
        assert found is not None
        return found

    try:
        yield Rig(
            runtime=KubeRuntime(
                api,
                children=manifests.ChildSettings(
                    init_image=INIT_IMAGE, output_pvc=OUTPUT_PVC, files_address="files:50051"
                ),
                output_root=tmp_path / "outputs",
            ),
            launch=launch_kube,
        )
    finally:
        await writer.close()
        await api.close()


async def eventually(
    runtime: ports.Runtime,
    resource: AnalyticsResource,
    condition: Callable[[Observation], bool],
    what: str,
) -> Observation:
    """Observe until ``condition`` holds, or fail naming ``what`` after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while True:
        seen = await runtime.observe(resource)
        if condition(seen):
            return seen
        if loop.time() > deadline:
            pytest.fail(f"{what}: last observed {seen}")
        await asyncio.sleep(0.1)


def unfinished(seen: Observation, resource: AnalyticsResource) -> bool:
    """Every replica of the service listed, none ended, the run live."""
    return (
        resource.service_id in seen.live_runs
        and sorted(r.index for r in seen.replicas) == list(range(resource.spec.reps))
        and all(r.run == resource.service_id and not r.final for r in seen.replicas)
    )


async def test_a_launch_creates_its_replicas_once(rig: Rig) -> None:
    resource = await rig.launch(SPEC)
    first = await rig.runtime.sync(resource, allow_create=True)
    assert first.observation.problem is None
    await eventually(rig.runtime, resource, lambda s: unfinished(s, resource), "replicas listed")
    again = await rig.runtime.sync(resource, allow_create=True)
    assert unfinished(again.observation, resource), again.observation
    attempts = {r.index: r.attempt for r in again.observation.replicas}
    assert attempts == {0: 1, 1: 1}, "the same first attempts: nothing was started twice"


async def test_a_service_that_ran_already_is_not_created_again(rig: Rig) -> None:
    resource = await rig.launch(SPEC)
    result = await rig.runtime.sync(resource, allow_create=False)
    assert result.observation.live_runs == frozenset()
    assert result.observation.replicas == ()
    assert (await rig.runtime.observe(resource)).live_runs == frozenset()


async def test_a_stopped_and_forgotten_service_has_nothing_live(rig: Rig) -> None:
    """What a terminate does once its grace is over: stop (forced), then forget."""
    resource = await rig.launch(SPEC)
    await rig.runtime.sync(resource, allow_create=True)
    await eventually(rig.runtime, resource, lambda s: unfinished(s, resource), "replicas listed")
    assert await rig.runtime.stop(resource, force=True) is True
    await rig.runtime.forget(resource)
    gone = await eventually(
        rig.runtime, resource, lambda s: not s.live_runs, "no live run after stop and forget"
    )
    assert not any(r.state == ReplicaState.RUNNING for r in gone.replicas), gone


async def test_a_replica_that_never_ran_has_no_logs(rig: Rig) -> None:
    resource = await rig.launch(SPEC)
    never = Replica(resource.service_id, 0, ReplicaState.FAILED, attempt=1)
    assert await rig.runtime.attempt_logs(resource, never) == []
